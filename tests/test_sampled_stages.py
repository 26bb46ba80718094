"""The window scorer and skip-gram end to end from the command line, tracked in MLflow:
each model trains, is validated and tested, and its embeddings are read by nearest,
distance and compare-embeddings."""
import json
import math

import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.models.predictor import Embeddings, Predictor
from wordnet.runs.locate import load

# a tenth of an epoch or so: 300 of the window scorer's 2,948 minibatches, 3,000 of
# skip-gram's 19,565
SHORT = {"window": ["epochs=1", "early_stop=300", "validation_period=100"],
         "skipgram": ["epochs=1", "early_stop=3000", "validation_period=1000"]}


def run(recipe, out, experiment, *more):
    settings = [arg for pair in SHORT[recipe.removesuffix("-neg")] for arg in ("--set", pair)]
    return CliRunner().invoke(cli, ["run", "--pipeline", recipe, *settings, "--stage",
                                    "all", "--out", str(out), "--experiment", experiment, *more])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """The three recipes, shortened, each tracked in one store; skipgram-neg from a data
    folder with the 4-gram CSVs (and raw_sentences.txt, which it reads)."""
    import mlflow
    folder = tmp_path_factory.mktemp("sampled")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    results = {}
    for recipe in ("window", "skipgram", "skipgram-neg"):
        more = ("--data-dir", str(data_dir)) if recipe == "skipgram-neg" else ()
        results[recipe] = run(recipe, folder / recipe, recipe, *more)
    yield folder, results
    mp.undo()
    mlflow.set_tracking_uri(None)


def the_run(folder, experiment):
    from mlflow import MlflowClient
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    [exp] = client.search_experiments(filter_string=f"name = '{experiment}'")
    [found] = client.search_runs([exp.experiment_id])
    return client, found


def test_the_window_scorer_trains_and_is_tracked(trained):
    folder, results = trained
    result = results["window"]
    assert result.exit_code == 0, result.output
    assert "window: 294,825 training and 36,672 validation windows (k = 2)" in result.output
    assert "data: 294,825 training, 36,672 validation and " in result.output
    assert "4-grams" not in result.output              # the data as this model reads it
    assert "reproduce: nothing to compare" in result.output
    client, found = the_run(folder, "window")
    m = found.data.metrics
    assert found.info.status == "FINISHED" and found.data.params["model"] == "window"
    assert 0.7 < m["test/ranking_accuracy"] <= 1.0 and m["test/mean_margin"] > 0.5
    assert m["valid/final_loss"] == json.loads((folder / "window" / "metrics.json").read_text())[
        "valid/final_loss"]
    assert m["perf/updates"] == 300
    curve = client.get_metric_history(found.info.run_id, "train/loss_running_mean")
    assert len(curve) == 301 and curve[-1].value == m["train/final_loss"]
    points = client.get_metric_history(found.info.run_id, "valid/loss")
    assert [p.step for p in points] == [101, 201, 301]   # the last: the final model's
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"model.npz", "vocab.txt", "recipe.json", "history.json",
            "embeddings.png"} <= artifacts


@pytest.mark.parametrize("recipe", ["skipgram", "skipgram-neg"])
def test_skipgram_trains_and_is_tracked(trained, recipe):
    folder, results = trained
    assert results[recipe].exit_code == 0, results[recipe].output
    _, found = the_run(folder, recipe)
    m = found.data.metrics
    assert found.data.params["negatives"] == ("5" if recipe == "skipgram-neg" else "0")
    # better than a uniform guess over the 250 words, ln 250 = 5.52 (measured: 4.37 with
    # the full softmax, 5.05 with negative sampling, whose vectors are not trained to
    # normalise)
    better = 1.0 if recipe == "skipgram" else 0.3
    assert -math.log(250) + better < m["test/log_likelihood"] < 0
    assert m["test/ce"] == -m["test/log_likelihood"]
    assert m["valid/final_ce"] > 0
    from wordnet.data import embedded
    tag = found.data.tags.get("wordnet.data.sha256.raw_sentences.txt")
    assert tag == embedded.SHA256["raw_sentences.txt"]     # what it read, CSVs beside or not
    # info says its objective, from the recipe the run logged beside its model.npz
    info = CliRunner().invoke(cli, ["info", "--model", found.info.run_id])
    assert info.exit_code == 0, info.output
    objective = "negative sampling, 5 negatives" if recipe == "skipgram-neg" else "full softmax"
    assert f"   Model                    = skipgram ({objective})" in info.stdout.splitlines()
    assert info.stderr == (f"model: runs:/{found.info.run_id} "
                           f"(MLflow run {found.info.run_name!r})\n")


def test_their_embeddings_are_read_from_folders_and_runs(trained):
    folder, results = trained
    _, found = the_run(folder, "window")
    by_folder = load(str(folder / "window"))
    by_run = load(found.info.run_id)                     # downloaded from MLflow
    assert isinstance(by_folder, Embeddings) and by_folder.kind == "window"
    assert (by_run.W1 == by_folder.W1).all()
    runner = CliRunner()
    nearest = runner.invoke(cli, ["nearest", "day", "--model", str(folder / "skipgram"), "-k", "3"])
    assert nearest.exit_code == 0 and len(nearest.stdout.splitlines()) == 3
    distance = runner.invoke(cli, ["distance", "day", "week", "--model", found.info.run_id])
    assert distance.exit_code == 0 and float(distance.stdout) == pytest.approx(
        by_folder.distance("day", "week"))
    refused = runner.invoke(cli, ["predict", "have a good", "--model", str(folder / "window")])
    assert refused.exit_code == 2
    assert "is a window model: it does not predict next words" in refused.output
    compared = runner.invoke(cli, ["compare-embeddings", *(str(folder / r) for r in results),
                                   "--out", str(folder / "compared"), "--no-tracking"])
    assert compared.exit_code == 0, compared.output
    report = json.loads((folder / "compared" / "compare.json").read_text())
    assert [p["models"] for p in report["pairs"]] == [
        ["window", "skipgram"], ["window", "skipgram-neg"], ["skipgram", "skipgram-neg"]]
    assert all(0 < p["mean_overlap"] < 1 for p in report["pairs"])


def test_a_stage_run_alone_reads_the_folders_model(trained):
    folder, _ = trained
    result = CliRunner().invoke(cli, ["run", "--stage", "test", "--out", str(folder / "window"),
                                      "--no-tracking"])
    assert result.exit_code == 0, result.output
    assert "model: " in result.output and "test: ranking accuracy" in result.output


def test_log_backfills_a_window_run_and_from_run_fetches_it(trained, tmp_path):
    folder, _ = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.npz", "vocab.txt", "recipe.json", "history.json", "metrics.json",
                 "run.json"):
        (copy / name).write_bytes((folder / "window" / name).read_bytes())
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    result = CliRunner().invoke(cli, ["log", "--out", str(copy), "--tracking-uri", uri,
                                      "--experiment", "later"])
    assert result.exit_code == 0, result.output
    client, logged = the_run(folder, "later")
    _, live = the_run(folder, "window")
    assert logged.data.metrics["test/ranking_accuracy"] == live.data.metrics[
        "test/ranking_accuracy"]
    curve = client.get_metric_history(logged.info.run_id, "train/loss_running_mean")
    assert len(curve) == 301
    assert [p.step for p in client.get_metric_history(logged.info.run_id, "valid/loss")] == [
        101, 201, 301]
    assert "model.npz" in {a.path for a in client.list_artifacts(logged.info.run_id)}
    fetched = tmp_path / "fetched"
    result = CliRunner().invoke(cli, ["run", "--stage", "validate", "--from-run",
                                      live.info.run_id, "--out", str(fetched),
                                      "--tracking-uri", uri, "--experiment", "fetched"])
    assert result.exit_code == 0, result.output
    assert json.loads((fetched / "metrics.json").read_text())["valid/final_loss"] == \
        live.data.metrics["valid/final_loss"]


def test_a_sweep_of_window_scorers_ranks_them_by_their_validation_loss(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(cli, [
        "sweep", "--pipeline", "window", "--set", "learning_rate=0.02,0.2", "--set",
        "early_stop=200", "--set", "epochs=1", "--stage", "train", "--stage", "validate",
        "--out", str(out), "--no-tracking"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in rows] == ["FINISHED", "FINISHED"]
    assert rows[0]["valid/final_loss"] < rows[1]["valid/final_loss"]
    assert "Sorted by valid/final_loss" in (out / "sweep.md").read_text()
    assert "test/ranking_accuracy" in (out / "sweep.md").read_text()


def test_a_sweeps_judge_prunes_a_window_scorer_at_its_validation_point(tmp_path):
    from wordnet.runs import pipeline
    from wordnet.runs.recipes import load_recipe
    asked = []

    def judge(point, value):
        asked.append((point, value))
        return "not the best of the 2 trials at rung 0 (the best: 0.3)" if point == 2 else None

    with pytest.raises(pipeline.Pruned, match=r"validation point 2 \(iteration 101\): "
                                              r"validation hinge loss 0\.\d+, not the best of "
                                              r"the 2 trials at rung 0 \(the best: 0\.3\)$"):
        pipeline.run(load_recipe("window"), {"epochs": "1", "early_stop": "200",
                                             "validation_period": "50"}, ("train", "validate"), tmp_path / "p", pipeline.RunOptions(judge=judge))
    assert [point for point, _ in asked] == [1, 2]
    assert json.loads((tmp_path / "p" / "run.json").read_text())["status"] == "PRUNED"


def test_a_folder_holds_one_kind_of_model_the_last_trained(tmp_path, monkeypatch):
    """A 4-gram model trained into a window scorer's folder replaces it, and back:
    nothing reads the other kind's leftover checkpoint."""
    from wordnet.runs.rundir import RunDir
    monkeypatch.chdir(tmp_path)
    folder, runner = tmp_path / "artifacts" / "mixed", CliRunner()
    window = ["run", "--pipeline", "window", "--set", "epochs=1", "--set", "early_stop=50",
              "--stage", "train", "--out", str(folder), "--no-tracking"]
    assert runner.invoke(cli, window).exit_code == 0
    info = runner.invoke(cli, ["info", str(folder)])
    assert info.exit_code == 0 and "Model                    = window" in info.output
    assert "W2                       = 100 x 250" in info.output
    result = runner.invoke(cli, ["run", "--pipeline", "quick", "--set", "early_stop=50",
                                 "--stage", "train", "--out", str(folder), "--no-tracking"])
    assert result.exit_code == 0, result.output
    assert not (folder / "model.npz").exists() and RunDir(folder).model_file().name == "model.bin"
    assert runner.invoke(cli, ["predict", "have a good", "--model", str(folder)]).exit_code == 0
    none = runner.invoke(cli, ["predict", "have a good"])   # the latest run: a 4-gram model
    assert none.exit_code == 0, none.output
    assert runner.invoke(cli, window).exit_code == 0
    assert not (folder / "model.bin").exists() and not (folder / "ce_curves.png").exists()
    assert isinstance(load(str(folder)), Embeddings)
    assert isinstance(load(None), Embeddings)               # the latest run: this one
    # predict's latest run is the latest that predicts: no 4-gram model is left
    none = runner.invoke(cli, ["predict", "have a good"])
    assert none.exit_code == 1 and "no trained 4-gram model" in none.output
    other = tmp_path / "artifacts" / "four"
    assert runner.invoke(cli, ["run", "--pipeline", "quick", "--set", "early_stop=50",
                               "--stage", "train", "--out", str(other),
                               "--no-tracking"]).exit_code == 0
    assert runner.invoke(cli, window).exit_code == 0      # the window scorer: latest again
    assert isinstance(load(None), Embeddings) and not isinstance(load(None), Predictor)
    assert isinstance(load(None, predicts=True), Predictor)
    assert runner.invoke(cli, ["predict", "have a good"]).exit_code == 0
    resumed = runner.invoke(cli, ["run", "--resume", "--out", str(folder), "--no-tracking"])
    assert resumed.exit_code == 1
    assert "a window run does not resume: train it again, without --resume" in resumed.output


def test_a_split_without_examples_is_named(tmp_path):
    from types import SimpleNamespace

    from wordnet.data.dataset import Vocabulary
    from wordnet.models import registry
    from wordnet.runs.pipeline import PipelineError
    from wordnet.runs.recipes import load_recipe
    from wordnet.runs.sampled_stages import SampledStages
    (tmp_path / "raw_sentences.txt").write_text("a b c\n" * 10)
    config = load_recipe("window").config
    run = SimpleNamespace(config=config, kind=registry.of(config), data_dir=tmp_path,
                          dataset=SimpleNamespace(vocab=Vocabulary(("a", "b", "c")),
                                                  files={"raw_sentences.txt": "-"}))
    with pytest.raises(PipelineError, match="the train split of the sentences has no "
                                            r"windows \(k = 2\): choose a smaller window"):
        SampledStages(run).examples("train")


def test_resuming_where_nothing_was_saved_says_so(tmp_path):
    """An interrupted window scorer saves nothing (it does not resume): --resume on its
    folder says there is nothing to resume, not that model.bin is missing."""
    folder = tmp_path / "interrupted"
    folder.mkdir()
    (folder / "run.json").write_text('{"status": "KILLED", "recipe": "window"}')
    result = CliRunner().invoke(cli, ["run", "--resume", "--out", str(folder), "--no-tracking"])
    assert result.exit_code == 1
    assert f"nothing to resume in {folder}/: no training saved its model" in result.output


def test_resuming_a_finished_run_is_refused_before_any_mlflow_run(data_dir, tmp_path,
                                                                 monkeypatch):
    """--resume on a folder whose training ended used to fail only after making a FAILED
    MLflow run; and a window scorer's run does not resume at all."""
    from wordnet import tracking
    started = []
    monkeypatch.setattr(tracking, "start_run", lambda *a, **k: started.append(a))
    for recipe in ("quick", "window"):
        out = tmp_path / recipe
        done = CliRunner().invoke(cli, ["run", "--pipeline", recipe, "--stage", "train",
                                        "--set", "early_stop=5", "--set", "epochs=1",
                                        "--data-dir", str(data_dir), "--out", str(out),
                                        "--no-tracking"])
        assert done.exit_code == 0, done.output
        again = CliRunner().invoke(cli, ["run", "--resume", "--out", str(out),
                                         "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
        assert again.exit_code == 1
        assert ("its training ended (there is no model.bin.state.npz)" if recipe == "quick"
                else "a window run does not resume") in again.output
    assert started == []

