"""wordnet.runs.rundir: the run folder, its checks before a run, and the latest run."""
import dataclasses
from pathlib import Path

import pytest

from wordnet.models import checkpoint
from wordnet.models.fourgram import FourGramConfig
from wordnet.runs import rundir
from wordnet.runs.rundir import RunDir, RunFolderError, latest_run


def test_an_unwritable_output_folder_is_caught_first(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="cannot write the run's files there"):
        rundir.check_writable(tmp_path / "file" / "out")


def test_the_space_a_run_needs():
    reference = FourGramConfig()
    header = checkpoint.Header.for_run(reference, 250, (0, 0, 0))
    model = header.file_size()
    needed = rundir.space_needed(header, 32_801)
    assert 4 * model + 32_801 * 25 < needed < 20 * 2**20        # about 9 MB
    bigger = dataclasses.replace(reference, hidden_size=2000)
    more_params = (2000 - 200) * (3 * 50 + 1 + 250)             # W2, b2, W3
    bigger = checkpoint.Header.for_run(bigger, 250, (0, 0, 0))
    assert rundir.space_needed(bigger, 32_801) - needed == 4 * 8 * more_params
    rundir.check_space(Path("."), 1)
    with pytest.raises(RunFolderError, match=r"only .* MB free, and the run needs about "
                                                     r"1,000,000,000,000,000.0 MB"):
        rundir.check_space(Path("."), 10**21)


def test_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rundir.output_folder("x", "run", True, None) == Path("x")
    assert rundir.output_folder(None, "run", False, None) == Path("artifacts/run")
    Path("artifacts/run").mkdir(parents=True)
    assert rundir.output_folder(None, "run", False, None) == Path("artifacts/run-2")
    with pytest.raises(RunFolderError, match="no trained model under artifacts"):
        rundir.output_folder(None, "run", True, None)
    (Path("artifacts/run") / "model.bin").write_bytes(b"")
    RunDir("artifacts/run").write_manifest(status="FINISHED")
    assert latest_run() == Path("artifacts/run")
    assert rundir.output_folder(None, "other", True, None) == Path("artifacts/run")
    RunDir("artifacts/run").write_manifest(status="FAILED")
    assert latest_run() is None


# -- issue 21 item 7: a run folder's JSON files, hand-edited --------------------------

@pytest.mark.parametrize("name, text, problem", [
    ("metrics.json", '{"valid/final_ce": "low"}', "valid/final_ce not a number"),
    ("metrics.json", "[1, 2]", "not an object"),
    ("history.json", '{"train_ce": [1, "x"], "valid_ce": []}', "train_ce is not a list of numbers"),
    ("history.json", '{"train_ce": []}', "not an object with train_ce and valid_ce"),
    ("history.json", '{"train_ce": [], "valid_ce": [[1.5, 2]]}', "valid_ce is not a list of [iteration, CE] pairs"),
    ("run.json", '{"stages": "train"}', "stages is not a list of names"),
    ("run.json", '{"mlflow_run_id": 5}', "mlflow_run_id is neither a string nor null"),
    ("run.json", '"FINISHED"', "not an object"),
    ("recipe.json", '{"config": 5}', "not an object with a config"),
    ("reproduction.json", '{"checks": [{"name": 1}]}',
     "no list of checks, each with a name and a result"),
])
def test_a_hand_edited_json_file_is_refused_in_one_line(tmp_path, name, text, problem):
    """`log` on a hand-edited metrics.json, history.json or run.json ended in
    `unexpected X`."""
    (tmp_path / name).write_text(text)
    with pytest.raises(RunFolderError) as e:
        RunDir(tmp_path).read_json(name)
    assert str(e.value) == f"{tmp_path / name}: not as a run writes it: {problem}"


@pytest.mark.parametrize("make", ["folder", "not json", "huge"])
def test_a_json_file_that_cannot_be_one_is_refused_in_one_line(tmp_path, make):
    path = tmp_path / "metrics.json"
    if make == "folder":
        path.mkdir()
    elif make == "not json":
        path.write_text("{\n")
    else:
        with open(path, "wb") as f:
            f.truncate(1 << 30)
    with pytest.raises(RunFolderError) as e:
        RunDir(tmp_path).read_json("metrics.json")
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_the_files_a_run_writes_are_read_back(tmp_path):
    folder = RunDir(tmp_path)
    folder.write_manifest(status="FINISHED", recipe="quick", stages=["train"],
                          mlflow_run_id=None, mlflow_run_name=None)
    folder.write_json("history.json", {"train_ce": [5.0, 4], "valid_ce": [[2, 4.5]]})
    folder.write_json("metrics.json", {"valid/final_ce": 4.5, "train/epochs": 1})
    assert folder.read_json("run.json")["stages"] == ["train"]
    assert folder.read_json("history.json")["valid_ce"] == [[2, 4.5]]
    assert folder.read_json("metrics.json")["train/epochs"] == 1
    assert folder.read_json("missing.json") is None
