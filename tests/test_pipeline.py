"""wordnet.runs.pipeline: the stages, run() and the run folder's record."""
import json
import subprocess
import sys

import numpy as np
import pytest

from wordnet.models import checkpoint
from wordnet.models.fourgram import Model
from wordnet.runs import pipeline, recipes
from wordnet.runs.fourgram_stages import FourGramStages
from wordnet.runs.rundir import RunDir, latest_run

TINY = {"backend": "exact", "epochs": "1", "early_stop": "20"}


def recipe(name="quick", **overrides):
    return recipes.with_overrides(recipes.load_recipe(name), {k: str(v) for k, v in overrides.items()})


@pytest.fixture(scope="module")
def trained(dataset, data_dir, tmp_path_factory, recording_run):
    """A 20-update model trained, validated and tested by the pipeline; (folder, recorder)."""
    out, recorder = tmp_path_factory.mktemp("tiny"), recording_run()
    run = pipeline.PipelineRun(recipe(**TINY), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset), recorder)
    run.execute(("load", "train", "validate", "test"))
    return out, recorder


# -- stages ---------------------------------------------------------------------------------

def test_train_validate_test_write_and_log_everything(trained, dataset):
    out, recorder = trained
    assert {p.name for p in out.iterdir()} >= {
        "model.bin", "vocab.txt", "recipe.json", "history.json", "metrics.json",
        "ce_curves.png", "embeddings.png", "embeddings.html"}
    header, _ = checkpoint.load(out / "model.bin", 250)
    assert (header.epochs, header.early_stop, header.train_rows) == (1, 20, len(dataset.train))
    assert (out / "vocab.txt").read_text().split() == list(dataset.vocab.words)
    train_ce = [(v, s) for k, v, s in recorder.metrics if k == "train/ce_running_mean"]
    assert [s for _, s in train_ce] == list(range(1, 22))
    assert [v for v, _ in train_ce] == json.loads((out / "history.json").read_text())["train_ce"]
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        ce = metrics["valid/final_ce" if split == "valid" else "test/ce"]
        assert metrics[f"{split}/perplexity"] == pytest.approx(2.718281828459045 ** ce)
        assert 0 < metrics[f"{split}/top1"] <= metrics[f"{split}/top5"] < 1
    assert metrics["perf/updates"] == 20 and metrics["perf/updates_per_second"] > 0
    assert metrics["train/final_ce"] == train_ce[-1][0]
    finals = {k: step for k, v, step in recorder.metrics if k in metrics}
    assert set(finals) == set(metrics) and set(finals.values()) == {0}   # bars in MLflow's UI
    assert {"backend", "learning_rate", "recipe", "wordnet_version"} <= set(recorder.params)
    assert recorder.tags["wordnet.data.sha256.train_data.csv"].startswith("5f8816ab")
    assert recorder.tags["wordnet.override.early_stop"] == "20"
    assert recorder.tags["mlflow.note.content"].endswith("Overridden: early_stop=20 (recipe: "
                                                         "epoch end), backend=exact (recipe: fast).")
    assert {"wordnet.cpu", "wordnet.isa", "wordnet.threads"} <= set(recorder.tags)
    # one epoch, one validation (the final model's): no chart of a single dot
    assert [k for k, v, s in recorder.metrics if k in ("train/epoch", "valid/ce")] == []
    means = [(s, v) for k, v, s in recorder.metrics if k == "train/batch_ce_mean10"]
    assert [s for s, _ in means] == [10, 20, 21]                 # every 10, and the last
    # within the epoch the running mean after n minibatches is their mean: so the first
    # ten's mean is the running mean at 10, the next ten's follows from it and that at 20
    rm = dict((s, v) for v, s in train_ce)
    assert means[0][1] == pytest.approx(rm[10], rel=1e-12)
    assert means[1][1] == pytest.approx((20 * rm[20] - 10 * rm[10]) / 10, rel=1e-12)
    assert [d[:2] for d in recorder.datasets] == [("train", "training"), ("valid", "validation"),
                                                  ("test", "test")]
    assert {"model.bin", "vocab.txt", "ce_curves.png", "embeddings.png",
            "embeddings.html"} <= set(recorder.artifacts)
    [(example, name)] = recorder.models
    assert name == "recorded" and len(example.split()) == 3      # the run's name
    assert recorder.registered == []                 # no --register: nothing registered
    assert recorder.linked["test/ce"] == ("test", recorder.datasets[2][3][:20])
    assert recorder.linked["valid/final_ce"][0] == "valid"


def test_the_epochs_and_the_validation_curve_are_lines_of_two_points_or_more(dataset, tmp_path,
                                                                           recording_run):
    """Two epochs of 30 minibatches, validated at 10 and 20 in each: train/epoch at the
    first iteration of each, valid/ce at every validation point and after the training;
    a single validation point, with no validate stage after it, is not logged."""
    import dataclasses
    small = dataclasses.replace(dataset, train=dataset.train[:3000])
    (tmp_path / "two").mkdir(), (tmp_path / "once").mkdir()             # as run() does
    quiet = pipeline.RunOptions(echo=lambda m: None, dataset=small)
    recorder = recording_run()
    run = pipeline.PipelineRun(recipe(**TINY | {"epochs": 2, "early_stop": 15,
                                                "validation_period": 10}),
                               tmp_path / "two", quiet, recorder)
    metrics = run.execute(("load", "train", "validate"))
    assert [(s, v) for k, v, s in recorder.metrics if k == "train/epoch"] == [(1, 1), (31, 2)]
    curve = [(s, v) for k, v, s in recorder.metrics if k == "valid/ce"]
    assert [s for s, _ in curve] == [11, 21, 41, 46]
    assert curve[-1][1] == metrics["valid/final_ce"]
    recorder = recording_run()
    once = pipeline.PipelineRun(recipe(**TINY | {"early_stop": 15, "validation_period": 10}),
                                tmp_path / "once", quiet, recorder)
    once.execute(("load", "train"))
    assert [k for k, v, s in recorder.metrics if k in ("train/epoch", "valid/ce")] == []


def test_a_stage_alone_takes_the_model_from_the_folder(trained, dataset, data_dir):
    out, _ = trained
    before = json.loads((out / "metrics.json").read_text())
    run = pipeline.PipelineRun(recipes.load_recipe("reference"), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset))
    saved = RunDir(out).recipe()
    assert (saved.name, saved.config, saved.enforce_statistical_parity) == (
        "quick", recipe(**TINY).config, False)
    assert run.stages.model.W1.shape == (50, 250)
    with pytest.raises(pipeline.PipelineError, match="no 4-gram model in"):
        pipeline.PipelineRun(recipe(), out / "empty", pipeline.RunOptions(data_dir=data_dir, dataset=dataset)).stages.model
    metrics = pipeline.run(recipe(), {}, ("test",), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset))
    assert metrics["test/ce"] == pytest.approx(before["test/ce"], abs=1e-9)


def test_divergence_stops_training_and_keeps_the_last_checkpoint(dataset, data_dir, tmp_path):
    last = (data_dir / "model9-3000.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(last)
    run = pipeline.PipelineRun(recipe(learning_rate=1e305, early_stop=5), tmp_path, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset))
    with pytest.raises(pipeline.PipelineError,
                       match=r"diverged at iteration \d+ .*learning_rate than 1e\+305"):
        run.execute(("train",))
    assert (tmp_path / "model.bin").read_bytes() == last


def test_the_record_changes_only_when_a_run_succeeds_or_changes_the_model(dataset, tmp_path,
                                                                         monkeypatch):
    out, quiet = tmp_path / "run", (lambda m: None)
    pipeline.run(recipe(**TINY), {}, ("train",), out, pipeline.RunOptions(echo=quiet, dataset=dataset))
    finished = (out / "run.json").read_text()
    assert json.loads(finished)["status"] == "FINISHED" and latest_run(tmp_path) == out
    from wordnet.runs import reproduce
    monkeypatch.setattr(reproduce, "waived", lambda recipe, rows: {})   # held to all of them,
    with pytest.raises(pipeline.PipelineError, match="unigram baseline"):  # 20 updates fail
        pipeline.run(recipe(), {}, ("reproduce",), out, pipeline.RunOptions(echo=quiet, dataset=dataset))
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(FourGramStages, "test", interrupted)
    with pytest.raises(KeyboardInterrupt):                            # Ctrl-C in a stage alone
        pipeline.run(recipe(), {}, ("test",), out, pipeline.RunOptions(echo=quiet, dataset=dataset))
    assert (out / "run.json").read_text() == finished and latest_run(tmp_path) == out
    monkeypatch.undo()
    with pytest.raises(pipeline.PipelineError, match="diverged"):     # the old model stays
        pipeline.run(recipe(), {"learning_rate": "1e305", "early_stop": "5"}, ("train",), out, pipeline.RunOptions(echo=quiet, dataset=dataset))
    assert (out / "run.json").read_text() == finished
    pipeline.run(recipe(), {}, ("test",), out, pipeline.RunOptions(echo=quiet, dataset=dataset))
    assert json.loads((out / "run.json").read_text())["stages"] == ["test"]   # a success


def test_a_failed_run_in_a_new_folder_is_recorded(dataset, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(pipeline.PipelineError, match="diverged"):
        pipeline.run(recipe(), {"learning_rate": "1e305", "early_stop": "5"}, ("train",), out, pipeline.RunOptions(echo=lambda m: None, dataset=dataset))
    assert json.loads((out / "run.json").read_text())["status"] == "FAILED"


def test_only_drawing_imports_matplotlib_and_sklearn(tmp_path):
    """Their imports take seconds: the stages that draw nothing skip them."""
    code = ("import sys, wordnet.runs.pipeline; "
            "print([m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'sklearn')])")
    # run outside the checkout, so that the installed package is the one imported
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_plots_name_the_run_and_the_ce_plot_is_drawn_once(dataset, data_dir, tmp_path,
                                                               monkeypatch, recording_run):
    """A training validated in the same command has its CE plot drawn once, by the
    validate stage, with the final model's validation CE; a training alone draws it."""
    drawn, kinds = [], {pipeline.plots.ce_curves: "ce", pipeline.plots.embedding_map: "map"}
    monkeypatch.setattr(pipeline.plots.Painter, "draw",
                        lambda self, plot, path, *args, also=(), **kwargs:
                        drawn.append((kinds[plot], args, kwargs)))
    recorder, out = recording_run(), tmp_path / "lr-0.1"
    recorder.run_name = "stop=20 · quick · exact"
    out.mkdir()                                     # as run() does
    run = pipeline.PipelineRun(recipe(**TINY), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset), recorder)
    metrics = run.execute(("load", "train", "validate"))
    assert [(kind, kwargs["title"]) for kind, _, kwargs in drawn] == [
        ("map", "stop=20 · quick · exact"), ("ce", "stop=20 · quick · exact")]   # the run's name
    _, validated, after = drawn[1]
    assert after["final_valid_ce"] == metrics["valid/final_ce"]
    curve = json.loads((out / "history.json").read_text())["train_ce"]
    assert list(validated[0]) == curve and len(curve) == 21
    drawn.clear()
    alone = pipeline.PipelineRun(recipe(**TINY), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset), recorder)
    alone.execute(("load", "train"))
    assert [kind for kind, _, _ in drawn] == ["ce", "map"]
    assert drawn[0][2].get("final_valid_ce") is None and list(drawn[0][1][0]) == curve
    untracked = pipeline.PipelineRun(recipe(**TINY), out, pipeline.RunOptions(data_dir=data_dir, echo=lambda m: None, dataset=dataset))
    assert untracked.plot_title() == "lr-0.1 · quick · exact"   # the folder's, without MLflow


def test_the_training_starts_once_the_painters_warm_up_ended(dataset, data_dir, tmp_path):
    """A painter started early (warming up while MLflow's store is reached) is waited
    for before the training: its imports never share the cores with it."""
    events = []

    class Painter:
        def wait(self):
            events.append("painter ready")
            return []

        def draw(self, plot, path, *args, also=(), **kwargs):
            events.append(plot.__name__)

        def close(self):
            events.append("closed")

    class Bar:
        def __init__(self, total, loss):
            events.append("training")

        def update(self, it): ...
        def close(self): ...

    run = pipeline.PipelineRun(recipe(**TINY), tmp_path, pipeline.RunOptions(
        data_dir=data_dir, echo=lambda m: None, dataset=dataset, painter=Painter(),
        progress=Bar))
    run.execute(("load", "train", "validate"))
    assert events == ["painter ready", "training", "embedding_map", "ce_curves",
                      "painter ready", "closed"]


def test_a_split_smaller_than_a_batch_is_evaluated_and_a_sweep_goes_on(dataset, data_dir,
                                                                        tmp_path):
    """batch_size beyond the validation set evaluates it whole (it was a reshape error);
    beyond the training set, that run fails before training and the sweep goes on."""
    import dataclasses

    from wordnet.sweeps.search import Search, parse_space
    from wordnet.sweeps.sweep import Sweep, sweep
    small = dataclasses.replace(dataset, train=dataset.train[:3000], valid=dataset.valid[:50],
                                test=dataset.test[:50])
    grid = Search(parse_space([f"{k}={v}" for k, v in {**TINY, "early_stop": "1"}.items()]
                              + ["batch_size=1000,5000"]))
    rows = sweep(Sweep(recipe(), grid, ("train", "validate", "test"), tmp_path, data_dir),
                 echo=lambda m: None, dataset=small)
    by_size = {row["batch_size"]: row for row in rows}
    assert by_size["1000"]["status"] == "FINISHED"
    assert by_size["1000"]["valid/final_ce"] > 0 and by_size["1000"]["test/ce"] > 0
    assert by_size["5000"]["status"] == "FAILED"
    assert "do not fill one minibatch of 5000" in by_size["5000"]["error"]


def test_init_embeddings_starts_from_another_models_w1(data_dir, tmp_path):
    """--set init_embeddings=MODEL: W1 starts as that model's (the published one here),
    the rest as the recipe's init; a model of another size is refused in one line."""
    from click.testing import CliRunner

    from wordnet.cli import cli
    from wordnet.models.checkpoint import load
    published = data_dir / "model9-3000.bin"
    out = tmp_path / "from-published"
    result = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "backend=exact", "--set", "early_stop=0",
        "--set", f"init_embeddings={published}", "--stage", "train", "--data-dir", str(data_dir),
        "--out", str(out), "--no-tracking"])
    assert result.exit_code == 0, result.output
    assert f"W1 (the embeddings) from {published}" in result.output
    W1 = load(out / "model.bin")[1]["W1"]                 # no update made: early_stop=0
    assert np.array_equal(W1, load(published)[1]["W1"])
    plain = Model.initialize(recipe("quick").config, 250)
    assert np.array_equal(load(out / "model.bin")[1]["W2"], plain.W2)
    assert json.loads((out / "recipe.json").read_text())["config"]["init_embeddings"] == str(published)

    result = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "embedding_size=20", "--set", "early_stop=0",
        "--set", f"init_embeddings={published}", "--stage", "train", "--data-dir", str(data_dir),
        "--out", str(tmp_path / "too-small"), "--no-tracking"])
    assert result.exit_code == 1
    assert "its embeddings have 50 dimensions, this model's 20: --set embedding_size=50" \
        in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "init_embeddings=nowhere.bin", "--stage", "train",
        "--data-dir", str(data_dir), "--out", str(tmp_path / "none"), "--no-tracking"])
    assert result.exit_code == 1 and "init_embeddings=nowhere.bin: nowhere.bin: no such model file" \
        in result.output


def test_the_evaluations_run_while_the_model_is_logged_and_report_as_before(
        dataset, data_dir, tmp_path, monkeypatch, recording_run):
    """After training, the later stages' evaluations start on a thread of their own while
    MLflow takes the model (seconds of Python); each stage then reports its own, the
    figures those of the model evaluated in the stage."""
    import threading
    import time

    from wordnet.runs import fourgram_stages, reproduce
    from wordnet.training.trainer import evaluate
    seen, logged = [], threading.Event()

    def spied(model, rows, *args, **kwargs):
        seen.append((threading.current_thread().name, len(rows), logged.is_set()))
        return evaluate(model, rows, *args, **kwargs)
    monkeypatch.setattr(fourgram_stages, "evaluate", spied)
    monkeypatch.setattr(reproduce, "evaluate", spied)
    recorder = recording_run()
    log_model = recorder.log_model

    def slow_log_model(*args, **kwargs):             # MLflow's seconds of Python
        deadline = time.monotonic() + 60
        while len(seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        log_model(*args, **kwargs)
        logged.set()
    recorder.log_model = slow_log_model
    run = pipeline.PipelineRun(recipe(**TINY), tmp_path, pipeline.RunOptions(
        data_dir=data_dir, echo=lambda m: None, dataset=dataset), recorder)
    run.execute(("load", "train", "validate", "test", "reproduce"))
    # the trained model on valid and test, then the published model on valid and test
    assert [(thread, rows, after) for thread, rows, after in seen] == [
        ("wordnet-ahead", 46_568, False), ("wordnet-ahead", 46_568, False),
        ("wordnet-ahead", 46_568, False), ("wordnet-ahead", 46_568, False)]
    model = Model.restore(checkpoint.load(tmp_path / "model.bin", 250)[1], run.config)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for split, name in (("valid", "valid/final_ce"), ("test", "test/ce")):
        assert metrics[name] == evaluate(model, dataset.split(split)).ce
    assert recorder.models and json.loads((tmp_path / "reproduction.json").read_text())["checks"]


def test_work_ahead_runs_in_order_on_its_thread_and_raises_when_taken():
    import threading

    from wordnet.runs.stages import Ahead
    order = []

    def job(name, fails=False):
        def work():
            order.append((name, threading.current_thread().name))
            if fails:
                raise ValueError(f"{name} failed")
            return name.upper()
        return work
    ahead = Ahead({"a": job("a"), "b": job("b", fails=True), "c": job("c")})
    assert ahead.take("c") == "C"                       # waits for it
    with pytest.raises(ValueError, match="b failed"):
        ahead.take("b")
    assert ahead.take("a") == "A" and ahead.take("a", "gone") == "gone"   # taken once
    assert order == [("a", "wordnet-ahead"), ("b", "wordnet-ahead"), ("c", "wordnet-ahead")]
