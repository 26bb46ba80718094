"""wordnet.pipeline: recipes, --set overrides, the stages and the reproduction checks."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wordnet import checkpoint, pipeline
from wordnet.model import INT_MAX, Config, ConfigError, Model
from wordnet.predict import latest_run
from wordnet.tracking import NoRun

TINY = {"backend": "exact", "epochs": "1", "early_stop": "20"}


class Recorder(NoRun):
    """A tracking run that remembers what it was given."""

    run_id = "recorded"

    def __init__(self):
        self.params, self.metrics, self.artifacts, self.datasets, self.models = {}, [], [], [], []

    def log_params(self, params):
        self.params.update(params)

    def log_metric(self, key, value, step=0):
        self.metrics.append((key, value, step))

    def log_metrics(self, metrics, step=0):
        self.metrics += [(k, v, step) for k, v in metrics.items()]

    def log_artifacts(self, *paths):
        self.artifacts += [Path(p).name for p in paths]

    def log_dataset(self, rows, name, context, source, digest):
        self.datasets.append((name, context, len(rows), digest))

    def log_model(self, checkpoint, vocab, example):
        self.models.append(example)


def recipe(name="quick", **overrides):
    return pipeline.with_overrides(pipeline.load_recipe(name), {k: str(v) for k, v in overrides.items()})


@pytest.fixture(scope="module")
def trained(dataset, data_dir, tmp_path_factory):
    """A 20-update model trained, validated and tested by the pipeline; (folder, recorder)."""
    out, recorder = tmp_path_factory.mktemp("tiny"), Recorder()
    run = pipeline.PipelineRun(recipe(**TINY), data_dir, out, recorder, echo=lambda m: None,
                               dataset=dataset)
    run.execute(("load", "train", "validate", "test"))
    return out, recorder


# -- recipes and overrides ------------------------------------------------------------------

def test_the_reference_recipe_is_the_c_programs():
    assert pipeline.load_recipe("reference").config == Config()
    assert pipeline.load_recipe("reference").enforce_statistical_parity


def test_the_quick_recipe_is_one_epoch():
    quick = pipeline.load_recipe("quick")
    assert quick.config.epochs == 1 and quick.config.early_stop == 3725   # the whole epoch
    assert not quick.enforce_statistical_parity
    assert {"quick", "reference"} <= set(pipeline.recipe_names())


def test_a_recipe_from_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\n[config]\nhidden_size = 20\n')
    mine = pipeline.load_recipe(str(path))
    assert (mine.name, mine.config.hidden_size, mine.config.epochs) == ("mine", 20, 9)
    path.write_text("[config]\nhiden_size = 20\n")
    with pytest.raises(ConfigError, match="unknown key.*hiden_size"):
        pipeline.load_recipe(str(path))
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'"):
        pipeline.load_recipe("nope")


def test_overrides_are_typed_and_checked():
    r = recipe("reference", learning_rate="0.05", hidden_size="100", backend="fast", seed="3")
    assert (r.config.learning_rate, r.config.hidden_size, r.config.backend, r.config.seed) == (
        0.05, 100, "fast", 3)
    with pytest.raises(ConfigError, match="hidden_size: '1.5' is not an integer"):
        recipe(hidden_size="1.5")
    with pytest.raises(ConfigError, match="learning_rate: 'fast' is not a number"):
        recipe(learning_rate="fast")
    with pytest.raises(ConfigError, match="momentum must be in"):
        recipe(momentum="1.5")
    with pytest.raises(ConfigError, match="backend must be one of"):
        recipe(backend="gpu")
    with pytest.raises(ConfigError, match="reference_checkpoint: .*: no such file"):
        recipe(reference_checkpoint="/no/such.bin")


@pytest.mark.parametrize("pair, message", [
    ("epochs", "expected key=value"), ("epochs=", "expected key=value"),
    ("epoch=3", "unknown key; choose one of batch_size"),
])
def test_malformed_overrides(pair, message):
    with pytest.raises(ConfigError, match=message):
        pipeline.parse_overrides([pair])


def test_a_sweep_grid_is_every_combination():
    grid = pipeline.sweep_grid(["learning_rate=0.01,0.1,1.0", "hidden_size=100, 200"])
    assert len(grid) == 6
    assert grid[0] == {"learning_rate": "0.01", "hidden_size": "100"}
    assert grid[1] == {"learning_rate": "0.01", "hidden_size": "200"}


def test_iterations_counts_the_reported_ces():
    assert pipeline.iterations(Config(), 372_550) == 32_801          # SPEC section 3
    assert pipeline.iterations(pipeline.load_recipe("quick").config, 372_550) == 3_725
    assert pipeline.iterations(Config(epochs=1, early_stop=20), 372_550) == 21


# -- stages ---------------------------------------------------------------------------------

def test_train_validate_test_write_and_log_everything(trained, dataset):
    out, recorder = trained
    assert {p.name for p in out.iterdir()} >= {
        "model.bin", "vocab.txt", "recipe.json", "history.json", "metrics.json",
        "ce_curves.png", "embeddings.png"}
    header, _ = checkpoint.load(out / "model.bin", 250)
    assert (header.epochs, header.early_stop, header.train_rows) == (1, 20, len(dataset.train))
    assert (out / "vocab.txt").read_text().split() == list(dataset.vocab.words)
    train_ce = [(v, s) for k, v, s in recorder.metrics if k == "train_ce"]
    assert [s for _, s in train_ce] == list(range(1, 22))
    assert [v for v, _ in train_ce] == json.loads((out / "history.json").read_text())["train_ce"]
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        assert metrics[f"{split}_perplexity"] == pytest.approx(2.718281828459045 ** metrics[f"{split}_ce"])
        assert 0 < metrics[f"{split}_top1"] <= metrics[f"{split}_top5"] < 1
    assert metrics["updates"] == 20 and metrics["updates_per_second"] > 0
    assert {"backend", "learning_rate", "recipe", "wordnet_version",
            "data.sha256.train_data.csv"} <= set(recorder.params)
    assert [d[:2] for d in recorder.datasets] == [("train", "training"), ("valid", "validation"),
                                                  ("test", "test")]
    assert {"model.bin", "vocab.txt", "ce_curves.png", "embeddings.png"} <= set(recorder.artifacts)
    assert len(recorder.models) == 1


def test_a_stage_alone_takes_the_model_from_the_folder(trained, dataset, data_dir):
    out, _ = trained
    before = json.loads((out / "metrics.json").read_text())
    run = pipeline.PipelineRun(pipeline.load_recipe("reference"), data_dir, out,
                               echo=lambda m: None, dataset=dataset)
    saved = pipeline.saved_recipe(out)
    assert (saved.name, saved.config, saved.enforce_statistical_parity) == (
        "quick", recipe(**TINY).config, False)
    assert run.model.W1.shape == (50, 250)
    with pytest.raises(pipeline.PipelineError, match="no model in"):
        pipeline.PipelineRun(recipe(), data_dir, out / "empty", dataset=dataset).model
    metrics = pipeline.run(recipe(), {}, ("test",), out, data_dir, echo=lambda m: None,
                           dataset=dataset)
    assert metrics["test_ce"] == pytest.approx(before["test_ce"], abs=1e-9)


def test_divergence_stops_training_and_keeps_the_last_checkpoint(dataset, data_dir, tmp_path):
    last = (data_dir / "model9-3000.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(last)
    run = pipeline.PipelineRun(recipe(learning_rate=1e305, early_stop=5), data_dir, tmp_path,
                               echo=lambda m: None, dataset=dataset)
    with pytest.raises(pipeline.PipelineError,
                       match=r"diverged at iteration \d+ .*learning_rate than 1e\+305"):
        run.execute(("train",))
    assert (tmp_path / "model.bin").read_bytes() == last


def test_reproduce_checks_the_reference_facts_and_reports(trained, dataset, data_dir):
    out, recorder = trained
    strict = dataclasses.replace(recipe(**TINY), enforce_statistical_parity=True)
    run = pipeline.PipelineRun(strict, data_dir, out, recorder, echo=lambda m: None,
                               dataset=dataset)
    with pytest.raises(pipeline.PipelineError, match="3 reproduction check.s. failed: test CE"):
        run.reproduce()                     # 20 updates are far from model9-3000.bin
    report = json.loads((out / "reproduction.json").read_text())
    results = {c["key"]: c["result"] for c in report["checks"]}
    assert not report["passed"]
    assert results == {"test_ce": "pass", "valid_ce": "pass", "test_top1": "pass",
                       "test_top5": "pass", "next_words": "pass", "parity_ce": "FAIL",
                       "parity_top1": "FAIL", "agreement": "FAIL"}
    # the agreement, as both models' likeliest words over the test rows of full batches
    n = min(len(dataset.test) // strict.config.batch_size * strict.config.batch_size,
            len(dataset.test) // 100 * 100)
    rows = dataset.test[:n, :-1]
    reference = Model(checkpoint.load(data_dir / "model9-3000.bin")[1], "exact")
    expected = np.mean(run.model.predict_proba(rows).argmax(axis=1)
                       == reference.predict_proba(rows).argmax(axis=1))
    assert next(c["value"] for c in report["checks"] if c["key"] == "agreement") == expected
    markdown = (out / "reproduction.md").read_text()
    assert "| model9-3000.bin test CE | 2.6247421 | 2.62474208 ± 5e-09 | pass |" in markdown
    assert {"reproduction.md", "reproduction.json"} <= set(recorder.artifacts)


def test_a_check_that_is_not_enforced_is_reported_as_information(tmp_path):
    checks = [pipeline.Check("agreement", "top-1 agreement", 0.3, ">= 0.6", False, enforced=False)]
    pipeline.write_report(tmp_path, checks, "a model")
    assert json.loads((tmp_path / "reproduction.json").read_text())["passed"]
    assert "| top-1 agreement | 0.3 | >= 0.6 | info (not enforced) |" in (
        tmp_path / "reproduction.md").read_text()


def test_reproduce_compares_byte_for_byte(dataset, data_dir, reference_file, tmp_path):
    """10 exact updates of the C recipe are the C program's c_10_updates.bin, byte for byte."""
    c_recipe = recipe(backend="exact", epochs=1, early_stop=10, validation_period=INT_MAX,
                      reference_checkpoint=reference_file("c_10_updates.bin"))
    run = pipeline.PipelineRun(c_recipe, data_dir, tmp_path, echo=lambda m: None, dataset=dataset)
    run.train()
    checks = {c.key: c for c in pipeline.byte_parity(tmp_path / "model.bin",
                                                     reference_file("c_10_updates.bin"), "exact")}
    assert checks["identical"].passed and checks["max_difference"].value == 0.0
    checks = {c.key: c for c in pipeline.byte_parity(tmp_path / "model.bin",
                                                     reference_file("c_init.bin"), "exact")}
    assert not checks["identical"].passed and checks["max_difference"].value > 0
    assert checks["header"].value == "differs in early_stop"


def test_an_unwritable_output_folder_is_caught_first(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(pipeline.PipelineError, match="cannot write the run's files there"):
        pipeline.check_writable(tmp_path / "file" / "out")


def test_the_space_a_run_needs():
    reference = Config()
    model = checkpoint.Header.for_run(reference, 250, (0, 0, 0)).file_size()
    needed = pipeline.space_needed(reference, 250, 32_801)
    assert 4 * model + 32_801 * 25 < needed < 20 * 2**20        # about 9 MB
    bigger = dataclasses.replace(reference, hidden_size=2000)
    more_params = (2000 - 200) * (3 * 50 + 1 + 250)             # W2, b2, W3
    assert pipeline.space_needed(bigger, 250, 32_801) - needed == 4 * 8 * more_params
    pipeline.check_space(Path("."), 1)
    with pytest.raises(pipeline.PipelineError, match=r"only .* MB free, and the run needs about "
                                                     r"1,000,000,000,000,000.0 MB"):
        pipeline.check_space(Path("."), 10**21)


def test_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pipeline.output_folder("x", "run", True, None) == Path("x")
    assert pipeline.output_folder(None, "run", False, None) == Path("artifacts/run")
    Path("artifacts/run").mkdir(parents=True)
    assert pipeline.output_folder(None, "run", False, None) == Path("artifacts/run-2")
    with pytest.raises(pipeline.PipelineError, match="no trained model under artifacts"):
        pipeline.output_folder(None, "run", True, None)
    (Path("artifacts/run") / "model.bin").write_bytes(b"")
    pipeline.write_manifest(Path("artifacts/run"), status="FINISHED")
    assert latest_run() == Path("artifacts/run")
    assert pipeline.output_folder(None, "other", True, None) == Path("artifacts/run")
    pipeline.write_manifest(Path("artifacts/run"), status="FAILED")
    assert latest_run() is None


def test_only_drawing_imports_matplotlib(tmp_path):
    """Its import takes over half a second: the stages that draw nothing skip it."""
    code = "import sys, wordnet.pipeline; print([m for m in sys.modules if 'matplotlib' in m])"
    # run outside the checkout, so that the installed package is the one imported
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
