"""wordnet.runs.compare and `compare-embeddings`: shared nearest neighbours, maps side by side."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.models.predictor import Predictor
from wordnet.runs import compare


def test_neighbours_are_the_nearest_other_words_nearest_first():
    rng = np.random.default_rng(0)
    W1 = rng.normal(size=(5, 40))
    near = compare.neighbours(W1, 7)
    for v in range(40):
        d = np.linalg.norm(W1 - W1[:, [v]], axis=0)
        d[v] = np.inf
        assert list(near[v]) == list(np.argsort(d, kind="stable")[:7])


def test_overlap_is_the_share_of_neighbours_in_common():
    a = np.array([[1, 2, 3, 4], [0, 2, 3, 4]])
    b = np.array([[4, 3, 9, 8], [0, 2, 3, 4]])
    assert list(compare.overlap(a, b)) == [0.5, 1.0]


def test_a_rotated_and_scaled_embedding_has_the_same_neighbours():
    rng = np.random.default_rng(1)
    W1 = rng.normal(size=(6, 50))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    words = tuple(f"w{i}" for i in range(50))
    [pair] = compare.compare([compare.Embeddings("a", W1, words),
                              compare.Embeddings("b", 3 * rotation @ W1 + 1, words)])
    assert pair.mean == 1.0


def test_models_of_different_vocabularies_are_not_compared():
    W1 = np.eye(3)
    with pytest.raises(compare.CompareError, match="different vocabularies"):
        compare.compare([compare.Embeddings("a", W1, ("x", "y", "z")),
                         compare.Embeddings("b", W1, ("x", "z", "y"))])
    with pytest.raises(compare.CompareError, match="two models or more"):
        compare.compare([compare.Embeddings("a", W1, ("x", "y", "z"))])


def test_compare_embeddings_reports_every_pair_draws_the_maps_and_logs_them(
        data_dir, reference_file, tracking_uri, tmp_path):
    """The published model, the C program's own training of it, and the published one
    again: three pairs; a model agrees with itself on every neighbour."""
    from mlflow import MlflowClient
    published, c_full = data_dir / "model9-3000.bin", reference_file("c_full.bin")
    out = tmp_path / "compared"
    result = CliRunner().invoke(cli, ["compare-embeddings", str(published), str(c_full),
                                      str(published), "--data-dir", str(data_dir),
                                      "--out", str(out), "--experiment", "compare"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    assert [p["models"] for p in report["pairs"]] == [
        ["model9-3000.bin", "c_full.bin"], ["model9-3000.bin", "model9-3000.bin #3"],
        ["c_full.bin", "model9-3000.bin #3"]]
    first, itself, last = report["pairs"]
    assert itself["mean_overlap"] == 1.0 and first["mean_overlap"] == last["mean_overlap"]
    # the figure, computed again from the two models
    a, b = (Predictor.load(path, data_dir / "vocab.txt").W1 for path in (published, c_full))
    expected = compare.overlap(compare.neighbours(a), compare.neighbours(b))
    assert first["mean_overlap"] == pytest.approx(expected.mean())
    assert 0.3 < first["mean_overlap"] < 1.0
    assert first["per_word"]["time"] == expected[Predictor.load(
        published, data_dir / "vocab.txt").vocab.words.index("time")]
    assert "| model9-3000.bin | c_full.bin | " in result.output
    png = (out / "embeddings_compared.png").read_bytes()
    assert len(png) > 100_000
    # three maps, two to a row: as wide as one map alone, which MLflow's viewer shows
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1200, 1270)
    client = MlflowClient()
    [experiment] = client.search_experiments(filter_string="name = 'compare'")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["overlap/1-2"] == pytest.approx(first["mean_overlap"])
    assert run.data.metrics["overlap/1-3"] == 1.0
    assert run.data.params["model2"] == str(c_full)
    assert {"compare.md", "compare.json", "embeddings_compared.png"} == {
        a.path for a in client.list_artifacts(run.info.run_id)}


def test_compare_embeddings_refuses_one_model_and_different_vocabularies(data_dir, tmp_path):
    result = CliRunner().invoke(cli, ["compare-embeddings", str(data_dir / "model9-3000.bin"),
                                      "--no-tracking", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "two models or more" in result.output
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(data_dir / "model9-3000.bin", other / "model.bin")          # a run folder
    words = (data_dir / "vocab.txt").read_text().split()
    (other / "vocab.txt").write_text("\n".join(reversed(words)) + "\n")
    result = CliRunner().invoke(cli, ["compare-embeddings", str(data_dir / "model9-3000.bin"),
                                      str(other), "--data-dir", str(data_dir), "--no-tracking",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "different vocabularies" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b").exists()
