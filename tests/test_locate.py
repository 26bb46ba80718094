"""wordnet.runs.locate's names for a model: `published` (the upstream author's
model9-3000.bin, shipped with the package) and a recipe's name (the latest finished run
of that recipe under artifacts/), wherever a model is named: --model, `info MODEL`,
`compare-embeddings MODEL...` and `--set init_embeddings=MODEL`."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.data import embedded
from wordnet.runs.locate import load
from wordnet.runs.rundir import RunDir, latest_run

HAVE_A_GOOD_TOP3 = [" 1. time  0.332076", " 2. day   0.102091", " 3. game  0.059815"]  # SPEC 6


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def finished_run(folder: Path, recipe: str, when: str, model: bytes) -> Path:
    """A run folder as `run` leaves it: a 4-gram checkpoint, its vocabulary and run.json."""
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(model)
    (folder / "vocab.txt").write_bytes(embedded.read_bytes("vocab.txt"))
    (folder / "run.json").write_text(json.dumps({"status": "FINISHED", "recipe": recipe,
                                                 "finished": when}))
    return folder


@pytest.fixture(scope="module")
def published_bytes() -> bytes:
    return embedded.read_bytes(embedded.PUBLISHED_MODEL)


def test_published_names_the_shipped_model_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                         # no data/, no artifacts/
    result = invoke("predict", "have a good", "--model", "published", "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == HAVE_A_GOOD_TOP3
    info = invoke("info", "published")
    assert info.exit_code == 0, info.output
    assert "Parameters               =    92950" in info.stdout
    near = invoke("nearest", "day", "--model", "published", "-k", "3")
    assert near.exit_code == 0 and len(near.stdout.splitlines()) == 3
    assert invoke("distance", "day", "week", "--model", "published").exit_code == 0
    assert list(tmp_path.iterdir()) == []               # nothing written here


def test_a_file_named_like_a_model_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "published").write_bytes(b"\0" * 10)
    result = invoke("predict", "have a good", "--model", "published")
    assert result.exit_code == 1 and "not a WordNet checkpoint" in result.stderr


def test_a_recipe_name_is_its_latest_finished_run(tmp_path, monkeypatch, published_bytes):
    monkeypatch.chdir(tmp_path)
    c_full = embedded.read_bytes(embedded.C_FULL)
    finished_run(tmp_path / "artifacts" / "old", "quick", "2026-01-01T00:00:00", c_full)
    finished_run(tmp_path / "artifacts" / "new", "quick", "2026-01-02T00:00:00", published_bytes)
    finished_run(tmp_path / "artifacts" / "other", "reference", "2026-01-03T00:00:00", c_full)
    assert latest_run(recipe="quick") == Path("artifacts/new")
    assert latest_run() == Path("artifacts/other")
    result = invoke("predict", "have a good", "--model", "quick", "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == HAVE_A_GOOD_TOP3          # artifacts/new's model
    RunDir("artifacts/new").write_manifest(status="FAILED")         # not finished: not it
    assert latest_run(recipe="quick") == Path("artifacts/old")


def test_a_recipe_without_a_finished_run_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("nearest", "day", "--model", "window")
    assert result.exit_code == 1
    assert result.stderr == ("Error: no finished run of the window recipe under artifacts/: "
                             "train one with `wordnet-pipeline run --pipeline window`\n")


def test_compare_embeddings_and_init_embeddings_take_the_names(tmp_path, monkeypatch,
                                                               published_bytes):
    monkeypatch.chdir(tmp_path)
    finished_run(tmp_path / "artifacts" / "ref", "reference", "2026-01-01T00:00:00",
                 embedded.read_bytes(embedded.C_FULL))
    result = invoke("compare-embeddings", "published", "reference", "--no-tracking",
                    "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "| published | reference | 0.733 |" in result.stdout   # docs/cli.md's figure
    shutil.rmtree(tmp_path / "artifacts")
    result = invoke("run", "--stage", "train", "--set", "init_embeddings=published",
                    "--set", "epochs=1", "--set", "early_stop=0", "--set", "backend=exact",
                    "--no-tracking", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    trained, published = load(str(tmp_path / "run")), load("published")
    assert trained.W1.shape == published.W1.shape
    np.testing.assert_array_equal(trained.W1, published.W1)     # no update: W1 as given
