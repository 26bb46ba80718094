"""The pipeline: recipes, the stages load, train, validate, test and reproduce, and sweeps.

A recipe (``pipelines/*.toml``) fixes the hyperparameters; ``--set``
overrides them.  A run executes some of the stages, in that order, and
writes into its output folder:

    model.bin       the checkpoint (C format)     vocab.txt       its vocabulary
    recipe.json     the hyperparameters           history.json    every training CE
    metrics.json    the final metrics             run.json        what ran, how it ended
    ce_curves.png   embeddings.png                reproduction.md / reproduction.json

A stage run alone picks up the model and its hyperparameters from that folder.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import json
import math
import shutil
import signal
import tempfile
import threading
import tomllib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, checkpoint, plots, tracking
from .data import load_dataset
from .fetch import fetch, has_data
from .model import Config, ConfigError, Model
from .predict import CHECKPOINT, MANIFEST, RUNS_DIR, VOCAB, latest_run
from .tracking import NoRun
from .train import Diverged, Position, Trainer, evaluate

STAGES = ("load", "train", "validate", "test", "reproduce")
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(Config))
EXTRA_KEYS = ("reference_checkpoint",)       # a checkpoint `reproduce` compares byte for byte
KEYS = CONFIG_KEYS + EXTRA_KEYS
EVALUATION_KEYS = ("backend", "dtype") + EXTRA_KEYS   # they mean something without training
REFERENCE_MODEL = "model9-3000.bin"
RECIPE = "recipe.json"                       # the recipe a model was trained with
SPACE_MARGIN = 4 * 2**20                     # bytes for the plots, reports and JSON files


class PipelineError(Exception):
    """A stage cannot run (no model, no reference) or failed (divergence, failed checks)."""


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    config: Config
    enforce_statistical_parity: bool = True
    reference_checkpoint: Path | None = None


def recipe_names() -> list[str]:
    folder = importlib.resources.files("wordnet.pipelines")
    return sorted(Path(p.name).stem for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (``reference``, ``quick``) or from a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        source, name = path, path.stem
    elif name_or_path in recipe_names():
        source = importlib.resources.files("wordnet.pipelines") / f"{name_or_path}.toml"
        name = name_or_path
    else:
        raise ConfigError(f"unknown pipeline {name_or_path!r}: choose one of "
                          f"{', '.join(recipe_names())} or give a .toml file")
    try:
        spec = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{source}: {getattr(e, 'strerror', None) or e}") from None
    unknown = set(spec.get("config", {})) - set(CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) in [config]: {', '.join(sorted(unknown))}")
    try:
        config = Config(**spec.get("config", {}))
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return Recipe(name, spec.get("description", ""), config,
                  bool(spec.get("reproduce", {}).get("enforce_statistical_parity", True)))


def parse_overrides(pairs) -> dict[str, str]:
    """``["key=value", ...]`` as a dict; ConfigError for a malformed pair or unknown key."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        if key not in KEYS:
            raise ConfigError(f"--set {key}: unknown key; choose one of {', '.join(KEYS)}")
        out[key] = value.strip()
    return out


def with_overrides(recipe: Recipe, overrides: dict[str, str]) -> Recipe:
    """``recipe`` with the ``--set`` values, converted to each field's type and checked."""
    changes = {}
    for f in dataclasses.fields(Config):
        if f.name in overrides:
            changes[f.name] = _typed(f.name, overrides[f.name], f.type)
    reference = overrides.get("reference_checkpoint")
    if reference is not None and not Path(reference).is_file():
        raise ConfigError(f"reference_checkpoint: {reference}: no such file")
    return dataclasses.replace(
        recipe, config=dataclasses.replace(recipe.config, **changes),
        reference_checkpoint=Path(reference) if reference else recipe.reference_checkpoint)


def sweep_grid(pairs) -> list[dict[str, str]]:
    """Every combination of ``key=v1,v2,...`` values, the last key varying fastest."""
    axes = {key: [v.strip() for v in value.split(",") if v.strip()]
            for key, value in parse_overrides(pairs).items()}
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _typed(key: str, text: str, type_name: str):
    try:
        return {"int": int, "float": float, "str": str}[type_name](text)
    except ValueError:
        kind = {"int": "an integer", "float": "a number"}[type_name]
        raise ConfigError(f"{key}: {text!r} is not {kind}") from None


def iterations(config: Config, train_rows: int) -> int:
    """How many training CEs a run reports (SPEC section 3)."""
    M = train_rows // config.batch_size
    return (config.epochs - 1) * M + min(config.early_stop + 1, M)


class PipelineRun:
    """The stages of one run, sharing the data, the model and the output folder."""

    def __init__(self, recipe: Recipe, data_dir: Path, out: Path, tracked=None,
                 echo=print, progress=None, dataset=None, resume: bool = False):
        self.recipe, self.config = recipe, recipe.config
        self.data_dir, self.out = Path(data_dir), Path(out)
        self.tracked = tracked or NoRun()           # the MLflow run, if any
        self.echo, self.progress = echo, progress
        self._dataset, self._model = dataset, None
        self.resume = resume                        # continue an interrupted training
        self._evaluated = {}                        # split -> Metrics of this run's model
        self.step = 0                               # the last training iteration, for metrics
        self.metrics = self._read_json("metrics.json") or {}

    def execute(self, stages) -> dict:
        params = dataclasses.asdict(self.config) | {"recipe": self.recipe.name,
                                                    "wordnet_version": __version__}
        tags = {"wordnet.recipe": self.recipe.name, "wordnet.stages": ",".join(stages)}
        commit = tracking.git_commit()
        if commit:
            params["git_commit"] = tags["mlflow.source.git.commit"] = commit
        self.tracked.log_params(params)
        self.tracked.set_tags(tags)
        self.echo(f"{', '.join(stages)} ({self.recipe.name} recipe, {self.config.backend} "
                  f"backend, {self.config.dtype}) -> {self.out}/")
        if self.tracked.run_id:
            self.echo(f"MLflow run {self.tracked.run_id}")
        self.load()                                 # every stage needs the data
        for stage in STAGES[1:]:
            if stage in stages:
                getattr(self, stage)()
        return self.metrics

    # -- stages ---------------------------------------------------------------------------

    def load(self):
        if self._dataset is None:                  # a sweep loads it once for all its runs
            if not has_data(self.data_dir):
                self.echo(f"no data in {self.data_dir}/: fetching it")
                fetch(self.data_dir, log=self.echo)
            self._dataset = load_dataset(self.data_dir)
        data = self._dataset
        self.echo(f"data: {len(data.train):,} training, {len(data.valid):,} validation and "
                  f"{len(data.test):,} test 4-grams over {len(data.vocab)} words ({data.source})")
        self.tracked.log_params({f"data.sha256.{name}": digest
                                  for name, digest in data.files.items()})
        for split, context in (("train", "training"), ("valid", "validation"), ("test", "test")):
            name = f"{split}_data.csv" if f"{split}_data.csv" in data.files else "raw_sentences.txt"
            self.tracked.log_dataset(data.split(split), split, context, data.source / name,
                                      data.files[name])

    def train(self):
        cfg, data = self.config, self.dataset
        total = iterations(cfg, len(data.train))
        check_space(self.out, space_needed(cfg, len(data.vocab), total))
        model, trainer, before = self._trainer()
        bar = self.progress(total) if self.progress else None

        def on_iteration(it):
            self.tracked.log_metric("train_ce", it.train_ce, it.step)
            if bar:
                bar.update(it)

        def on_validation(step, valid_ce):
            self.tracked.log_metric("valid_ce", valid_ce, step)

        try:
            with stop_on_signals(trainer.request_stop):
                history = trainer.run(data.train, data.valid, on_iteration, on_validation)
        except Diverged as e:                       # a failed run, as a failed check is
            raise PipelineError(str(e)) from e
        finally:
            if bar:
                bar.close()
        history.train_ce[:0], history.valid_ce[:0] = before["train_ce"], before["valid_ce"]
        state = checkpoint.state_path(self.out / CHECKPOINT)
        if history.stopped:
            self._save_model(model)
            checkpoint.save_state(self.out / CHECKPOINT, trainer.velocity,
                                  dataclasses.asdict(trainer.position))
            self._write_json("history.json", {"train_ce": history.train_ce,
                                              "valid_ce": history.valid_ce})
            self.tracked.set_tags({"wordnet.stopped_at_iteration": trainer.position.step})
            self.echo(f"stopped at iteration {trainer.position.step}: the model and what "
                      f"resuming needs are in {self.out}/; `wordnet-pipeline run --resume "
                      f"--out {self.out}` continues")
            raise KeyboardInterrupt
        state.unlink(missing_ok=True)
        self._model, self.step = model, len(history.train_ce)
        self.metrics, self._evaluated = {}, {}      # those of an earlier model are stale
        self._save_model(model)
        self._write_json("history.json", {"train_ce": history.train_ce,
                                          "valid_ce": history.valid_ce})
        plots.ce_curves(self.out / "ce_curves.png", history.train_ce, history.valid_ce,
                        len(data.train) // cfg.batch_size, title=f"{self.recipe.name} recipe")
        plots.embedding_map(self.out / "embeddings.png", model.W1, data.vocab.words)
        self.echo(f"trained: {history.updates:,} updates in {history.seconds:.1f} s "
                  f"({history.updates_per_second:,.0f} updates/s), training CE "
                  f"{history.train_ce[-1]:.6f}")
        self.metrics["train_ce"] = history.train_ce[-1]        # logged at every iteration
        self._record({"updates": history.updates, "train_seconds": history.seconds,
                      "updates_per_second": history.updates_per_second})
        self.tracked.log_artifacts(*(self.out / name for name in (
            CHECKPOINT, VOCAB, RECIPE, "history.json", "ce_curves.png", "embeddings.png")))
        example = " ".join(data.vocab.words[i] for i in data.test[0, :-1])
        self.tracked.log_model(self.out / CHECKPOINT, self.out / VOCAB, example)

    def validate(self):
        self._evaluate("valid")

    def test(self):
        self._evaluate("test")

    def reproduce(self):
        data, reference_path = self.dataset, self.data_dir / REFERENCE_MODEL
        if not reference_path.is_file():
            raise PipelineError(f"{reference_path}: missing; `wordnet-pipeline data fetch "
                                f"--data-dir {self.data_dir}` gets it")
        reference = Model(checkpoint.load(reference_path, len(data.vocab))[1], "exact")
        ours = self._evaluated.get("test") or evaluate(self.model, data.test,
                                                       self.config.batch_size)
        theirs = evaluate(reference, data.test)
        checks = forward_parity(reference, theirs, data)
        checks += statistical_parity(ours, theirs, self.recipe.enforce_statistical_parity)
        if self.recipe.reference_checkpoint:
            checks += byte_parity(self.out / CHECKPOINT, self.recipe.reference_checkpoint,
                                  self.config.backend, self.config.dtype)
        failed = [c.name for c in checks if c.enforced and not c.passed]
        write_report(self.out, checks, f"{self.out / CHECKPOINT} ({self.recipe.name} recipe, "
                                       f"{self.config.backend} backend, {self.config.dtype})")
        self.tracked.log_artifacts(self.out / "reproduction.md", self.out / "reproduction.json")
        self._record({"top1_agreement": next(c.value for c in checks if c.key == "agreement"),
                      "reproduction_failures": len(failed)})
        for c in checks:
            self.echo(f"  {'pass' if c.passed else 'FAIL' if c.enforced else 'info'}  "
                      f"{c.name}: {c.shown} (expected {c.expected})")
        if failed:
            raise PipelineError(f"{len(failed)} reproduction check(s) failed: "
                                f"{'; '.join(failed)} (see {self.out / 'reproduction.md'})")
        self.echo(f"reproduce: all {sum(c.enforced for c in checks)} checks passed")

    # -- helpers --------------------------------------------------------------------------

    def _trainer(self):
        """(model, trainer, history so far): fresh, or where an interrupted run stopped."""
        if not self.resume:
            model = Model.initialize(self.config, len(self.dataset.vocab))
            return model, Trainer(model, self.config), {"train_ce": [], "valid_ce": []}
        path = self.out / CHECKPOINT
        velocity, position = checkpoint.load_state(path)
        _, params = checkpoint.load(path, len(self.dataset.vocab))
        model = Model(params, self.config.backend, dtype=self.config.dtype)
        before = self._read_json("history.json") or {"train_ce": [], "valid_ce": []}
        trainer = Trainer(model, self.config, velocity, Position(**position))
        self.echo(f"resuming at iteration {trainer.position.step + 1} from {path}")
        return model, trainer, before

    @property
    def dataset(self):
        if self._dataset is None:
            self.load()
        return self._dataset

    @property
    def model(self) -> Model:
        if self._model is None:
            path = self.out / CHECKPOINT
            if not path.is_file():
                raise PipelineError(f"no model in {self.out}/: run --stage train first, "
                                    "or pass --out DIR or --from-run RUN_ID")
            header, params = checkpoint.load(path, len(self.dataset.vocab))
            self._model = Model(params, self.config.backend, dtype=self.config.dtype)
            self.echo(f"model: {path}")
        return self._model

    def _evaluate(self, split: str):
        m = evaluate(self.model, self.dataset.split(split), self.config.batch_size)
        self._evaluated[split] = m
        self.echo(f"{split}: CE {m.ce:.8f}, perplexity {m.perplexity:.4f}, top-1 "
                  f"{m.top1:.2%}, top-5 {m.top5:.2%} ({m.examples:,} examples)")
        self._record(m.as_dict(f"{split}_"))

    def _record(self, metrics: dict):
        self.metrics.update(metrics)
        self._write_json("metrics.json", self.metrics)
        self.tracked.log_metrics(metrics, step=self.step)

    def _save_model(self, model: Model):
        data = self.dataset
        header = checkpoint.Header.for_run(self.config, len(data.vocab),
                                           (len(data.train), len(data.valid), len(data.test)))
        checkpoint.save(self.out / CHECKPOINT, header, model.params())
        checkpoint.atomic_write(self.out / VOCAB, ("\n".join(data.vocab.words) + "\n").encode())
        recipe = self.recipe
        self._write_json(RECIPE, {"name": recipe.name, "config": dataclasses.asdict(self.config),
                                  "enforce_statistical_parity": recipe.enforce_statistical_parity})

    def _write_json(self, name: str, obj) -> None:
        checkpoint.atomic_write(self.out / name, (json.dumps(obj, indent=1) + "\n").encode())

    def _read_json(self, name: str):
        try:
            return json.loads((self.out / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise PipelineError(f"{self.out / name}: unreadable ({e})") from None


def run(recipe: Recipe, overrides: dict[str, str], stages, out: Path, data_dir: Path,
        track: bool = False, run_name: str | None = None, from_run: str | None = None,
        echo=print, progress=None, dataset=None, nested: bool = False,
        resume: bool = False) -> dict:
    """Run ``stages`` as one (MLflow) run; record how it ended in ``out/run.json``."""
    check_writable(out)
    status, run_id = "FAILED", None
    try:
        context = tracking.start_run(run_name, nested=nested) if track else nullcontext(NoRun())
        with context as tracked:
            run_id = tracked.run_id
            if from_run:
                download_run(from_run, out)
            if "train" not in stages or resume:
                recipe = saved_recipe(out) or recipe     # the model's, not the command line's
            recipe = with_overrides(recipe, overrides)
            metrics = PipelineRun(recipe, data_dir, out, tracked, echo, progress,
                                  dataset, resume).execute(stages)
        status = "FINISHED"
        return metrics
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        write_manifest(out, status=status, recipe=recipe.name, stages=list(stages),
                       mlflow_run_id=run_id)


def sweep(recipe: Recipe, grid: list[dict[str, str]], stages, out: Path, data_dir: Path,
          track: bool = False, run_name: str = "sweep", echo=print, progress=None) -> list[dict]:
    """One run per combination of ``grid``, nested under one parent run.  A run that
    fails is reported and the sweep goes on."""
    check_writable(out)
    if not has_data(data_dir):
        fetch(data_dir, log=echo)
    dataset = load_dataset(data_dir)
    results = []
    with tracking.start_run(run_name) if track else nullcontext(NoRun()) as parent:
        parent.log_params({f"sweep.{key}": ",".join(dict.fromkeys(c[key] for c in grid))
                           for key in grid[0]})
        for combination in grid:
            name = "-".join(f"{k}={v}" for k, v in combination.items())
            echo(f"== {name}")
            try:
                metrics = run(recipe, combination, stages, out / name, data_dir, track,
                              f"{run_name}-{name}", echo=echo, progress=progress,
                              dataset=dataset, nested=True)
                results.append({"run": name, **combination, "status": "FINISHED", **metrics})
            except PipelineError as e:
                echo(f"{name}: {e}")
                results.append({"run": name, **combination, "status": "FAILED", "error": str(e)})
        checkpoint.atomic_write(out / "sweep.json", (json.dumps(results, indent=1) + "\n").encode())
        parent.log_artifacts(out / "sweep.json")
    return results


def download_run(run_id: str, out: Path) -> None:
    """The checkpoint, vocabulary and hyperparameters of an MLflow run, into ``out``."""
    import mlflow
    for name in (CHECKPOINT, VOCAB, RECIPE):
        try:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                dst_path=str(out))
        except Exception as e:                 # MLflow and OS errors alike
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PipelineError(f"run {run_id}: cannot download {name} ({first})") from None


def output_folder(out: str | None, run_name: str, needs_model: bool, from_run: str | None) -> Path:
    """--out, else a fresh folder under artifacts/ for a run that trains (or fetches a
    run's model), else the folder of the latest finished run."""
    if out:
        return Path(out)
    if needs_model and not from_run:
        latest = latest_run()
        if latest is None:
            raise PipelineError(f"no trained model under {RUNS_DIR}/: run --stage train "
                                "first, or pass --out DIR or --from-run RUN_ID")
        return latest
    folder, n = RUNS_DIR / run_name, 1
    while folder.exists():
        n += 1
        folder = RUNS_DIR / f"{run_name}-{n}"
    return folder


def check_writable(folder: Path) -> None:
    """Fail now, not after an hour of training, when ``folder`` cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise PipelineError(f"{folder}: cannot write the run's files there "
                            f"({e.strerror or e}); choose another --out") from None


def space_needed(config: Config, vocab_size: int, iterations: int) -> int:
    """Bytes a training run may hold in its folder at once: the checkpoint and the
    resume state, each beside the temporary copy atomic_write replaces it with; the
    history (about 25 bytes a CE in JSON), likewise; and SPACE_MARGIN."""
    model = checkpoint.Header.for_run(config, vocab_size, (0, 0, 0)).file_size()
    return 2 * 2 * model + 2 * 32 * iterations + SPACE_MARGIN


def check_space(folder: Path, needed: int) -> None:
    """Fail before training, not when saving its result, when ``folder``'s file system
    has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise PipelineError(f"{folder}: only {_megabytes(free)} free, and the run needs about "
                            f"{_megabytes(needed)} (checkpoint, resume state, history); free "
                            "some space or choose another --out")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def saved_recipe(folder: Path) -> Recipe | None:
    """The recipe a model in ``folder`` was trained with, if recorded."""
    try:
        saved = json.loads((folder / RECIPE).read_text())
        return Recipe(saved["name"], "", Config(**saved["config"]),
                      saved["enforce_statistical_parity"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise PipelineError(f"{folder / RECIPE}: unreadable ({e})") from None


@contextmanager
def stop_on_signals(stop):
    """SIGINT and SIGTERM call ``stop()``, so that training ends between minibatches
    and its state can be saved; a second signal acts as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        signal.signal(signum, previous[signum])
        stop()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def write_manifest(folder: Path, **fields) -> None:
    fields["finished"] = datetime.now(timezone.utc).isoformat()
    checkpoint.atomic_write(folder / MANIFEST, (json.dumps(fields, indent=1) + "\n").encode())


# -- reproduction checks (SPEC section 6) ---------------------------------------------------

# Measured on model9-3000.bin over the 465 full test (validation) batches; the
# tolerance is half a unit of the last digit published.
MODEL9_FACTS = (("test_ce", "test CE", 2.62474208, 5e-9),
                ("valid_ce", "validation CE", 2.61306789, 5e-9),
                ("test_top1", "top-1 accuracy", 0.3632, 5e-5),
                ("test_top5", "top-5 accuracy", 0.666, 5e-4))
MODEL9_NEXT = ("have a good", (("time", 0.332076), ("day", 0.102091), ("game", 0.059815),
                               ("team", 0.057552), ("year", 0.041762)))
PARITY_CE, PARITY_TOP1, MIN_AGREEMENT = 0.01, 0.01, 0.60
BLAS_MAX_DIFFERENCE = 1e-9     # the fast backend sums in another order (SPEC section 5)


@dataclass(frozen=True)
class Check:
    key: str
    name: str
    value: float | bool | str
    expected: str
    passed: bool
    enforced: bool = True

    @property
    def shown(self) -> str:
        return f"{self.value:.8g}" if isinstance(self.value, float) else str(self.value)


def forward_parity(reference: Model, theirs, data) -> list[Check]:
    """The facts SPEC section 6 publishes about model9-3000.bin (test metrics ``theirs``)."""
    measured = theirs.as_dict("test_")
    measured["valid_ce"] = evaluate(reference, data.valid, accuracy=False).ce
    checks = [Check(key, f"{REFERENCE_MODEL} {name}", measured[key], f"{want} ± {tol:g}",
                    abs(measured[key] - want) <= tol)
              for key, name, want, tol in MODEL9_FACTS]
    text, expected = MODEL9_NEXT
    p = reference.predict_proba(data.vocab.encode(text.split())[None])[0]
    top = np.argsort(-p, kind="stable")[:len(expected)]
    got = [(data.vocab.words[i], float(p[i])) for i in top]
    ok = all(w == ew and abs(q - eq) <= 5e-7 for (w, q), (ew, eq) in zip(got, expected))
    checks.append(Check("next_words", f"{REFERENCE_MODEL} \"{text}\" top 5",
                        " ".join(f"{w} {q:.6f}" for w, q in got),
                        " ".join(f"{w} {q:.6f}" for w, q in expected), ok))
    return checks


def statistical_parity(ours, theirs, enforced: bool) -> list[Check]:
    """The trained model's test metrics (``ours``) against model9-3000.bin's (``theirs``)."""
    n = min(len(ours.predicted), len(theirs.predicted))    # batch sizes may differ
    agreement = float(np.mean(ours.predicted[:n] == theirs.predicted[:n]))
    return [
        Check("parity_ce", "test CE vs model9-3000.bin", ours.ce,
              f"{theirs.ce:.8f} ± {PARITY_CE}", abs(ours.ce - theirs.ce) <= PARITY_CE, enforced),
        Check("parity_top1", "top-1 accuracy vs model9-3000.bin", ours.top1,
              f"{theirs.top1:.4f} ± {PARITY_TOP1}", abs(ours.top1 - theirs.top1) <= PARITY_TOP1,
              enforced),
        Check("agreement", "top-1 agreement with model9-3000.bin", agreement,
              f">= {MIN_AGREEMENT}", agreement >= MIN_AGREEMENT, enforced),
    ]


def byte_parity(ours: Path, theirs: Path, backend: str, dtype: str = "float64") -> list[Check]:
    """Byte identity (exact backend) or weights within BLAS rounding (fast backend).

    Reported, not enforced, for float32: its rounding takes the weights far
    from any float64 run's."""
    a, b = ours.read_bytes(), theirs.read_bytes()
    (ha, pa), (hb, pb) = checkpoint.load(ours), checkpoint.load(theirs)
    differing = [f.name for f in dataclasses.fields(ha)
                 if getattr(ha, f.name) != getattr(hb, f.name)]
    if any(pa[k].shape != pb[k].shape for k in pa):
        difference = math.inf
    else:
        difference = max(float(np.max(np.abs(pa[k] - pb[k]))) for k in pa)
    tolerance = 0.0 if backend == "exact" else BLAS_MAX_DIFFERENCE
    checks = [Check("identical", f"byte identity with {theirs.name}", a == b, "True",
                    a == b, enforced=backend == "exact"),
              Check("max_difference", f"largest weight difference from {theirs.name}", difference,
                    f"<= {tolerance:g}", difference <= tolerance, enforced=dtype == "float64")]
    if differing:
        checks.append(Check("header", f"header of {theirs.name}",
                            "differs in " + ", ".join(differing), "identical", False))
    return checks


def write_report(folder: Path, checks: list[Check], subject: str) -> None:
    verdict = lambda c: "pass" if c.passed else ("FAIL" if c.enforced else "info (not enforced)")
    lines = ["# Reproduction report", "", f"Model: {subject}", "",
             "| check | value | expected | result |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {c.shown} | {c.expected} | {verdict(c)} |" for c in checks]
    passed = all(c.passed for c in checks if c.enforced)
    lines += ["", f"**{'All checks passed.' if passed else 'Some checks failed.'}**", ""]
    checkpoint.atomic_write(folder / "reproduction.md", "\n".join(lines).encode())
    finite = lambda v: v if not isinstance(v, float) or math.isfinite(v) else str(v)  # JSON
    report = {"model": subject, "passed": passed,
              "checks": [dataclasses.asdict(c) | {"value": finite(c.value), "result": verdict(c)}
                         for c in checks]}
    checkpoint.atomic_write(folder / "reproduction.json",
                            (json.dumps(report, indent=1) + "\n").encode())
