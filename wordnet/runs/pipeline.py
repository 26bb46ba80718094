"""The pipeline: the stages load, train, validate, test and reproduce, and sweeps.

A recipe (:mod:`wordnet.runs.recipes`) fixes the hyperparameters; a run executes
some of the stages, in that order, and writes into its folder
(:mod:`wordnet.runs.rundir`).  A stage run alone picks up the model and its
hyperparameters from that folder.  This module orchestrates; the checks of
``reproduce`` are in :mod:`wordnet.runs.reproduce`.
"""
from __future__ import annotations

import dataclasses
import signal
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

from wordnet import __version__, plots, tracking
from wordnet.data.dataset import load_dataset
from wordnet.errors import ConfigError, WordNetError
from wordnet.models import checkpoint
from wordnet.models.base import check_memory, default_threads
from wordnet.models.fourgram import Model, training_memory
from wordnet.runs.recipes import Recipe, with_overrides
from wordnet.runs.reproduce import reproduce
from wordnet.runs.rundir import (
    CE_PLOT,
    CHECKPOINT,
    EMBEDDING_PAGE,
    EMBEDDING_PLOT,
    HISTORY,
    MANIFEST,
    METRICS,
    NPZ_CHECKPOINT,
    RECIPE,
    REPORT,
    REPORT_JSON,
    VOCAB,
    RunDir,
    check_space,
    check_writable,
    space_needed,
)
from wordnet.runs.sampled_stages import SampledStages
from wordnet.tracking import NoRun
from wordnet.training.trainer import Diverged, Position, Trainer, evaluate

STAGES = ("load", "train", "validate", "test", "reproduce")
BATCH_CE_WINDOW = 10        # minibatches per point of train/batch_ce_mean10


class PipelineError(WordNetError):
    """A stage cannot run (no model) or failed (divergence, failed checks)."""


class Pruned(PipelineError):
    """A sweep's pruner stopped the training: clearly worse than the other trials."""
    run_status = "KILLED"                   # MLflow's status for it (tag wordnet.pruned)


class NotLogged(PipelineError):
    """The stages ran, but the tracking was lost on the way (the folder has it all)."""


class PipelineRun:
    """The stages of one run, sharing the data, the model and the output folder."""

    def __init__(self, recipe: Recipe, data_dir: Path | None, out: Path, tracked=None,
                 echo=print, progress=None, dataset=None, resume: bool = False,
                 register: str | None = None, judge=None):
        self.recipe, self.config = recipe, recipe.config
        self.data_dir = data_dir                    # None: the copy shipped with the package
        self.out = Path(out)
        self.folder = RunDir(out)
        self.tracked = tracked or NoRun()           # the MLflow run, if any
        self.echo, self.progress = echo, progress
        self._dataset, self._model = dataset, None
        self.resume = resume                        # continue an interrupted training
        self.register = register                    # a registered model's name, for the model
        self.judge = judge                          # a sweep's pruner: (point, CE) -> stop?
        self.wrote_model = False                    # whether this run changed the folder's model
        self._evaluated = {}                        # split -> Metrics of this run's model
        self.step = 0                               # the last training iteration: valid/ce ends there
        self.metrics = self.folder.read_json(METRICS) or {}
        self.painter = plots.Painter()              # the plots, drawn while the run goes on

    def execute(self, stages) -> dict:
        config, recipe = self.config, self.recipe
        self.describe(stages)
        self.echo(f"{', '.join(stages)} ({recipe.name} recipe, {config.backend} "
                  f"backend, {config.dtype}) -> {self.out}/")
        if self.tracked.run_id:
            self.echo(f"MLflow run {self.tracked.run_name!r}: {self.tracked.page}")
        try:
            self.load()                             # every stage needs the data
            # the 4-gram model's stages are this class's; the notes' other models' their own
            model_stages = self if config.model == "4gram" else SampledStages(self)
            for stage in STAGES[1:]:
                if stage in stages:
                    getattr(model_stages, stage)()
            self.tracked.log_artifacts(*self.painter.wait())
        finally:
            self.painter.close()                    # after an error: stops the drawing
        return self.metrics

    def describe(self, stages) -> None:
        """The run's parameters, and the tags that describe it in MLflow's UI."""
        config, recipe, commit = self.config, self.recipe, tracking.git_commit()
        self.tracked.log_params(dataclasses.asdict(config) | {
            "recipe": recipe.name, "wordnet_version": __version__, "git_commit": commit})
        self.tracked.set_tags({
            "mlflow.note.content": recipe.note(),          # the run's description in the UI
            "mlflow.source.git.commit": commit, "wordnet.recipe": recipe.name,
            "wordnet.stages": ",".join(stages), "wordnet.backend": config.backend,
            "wordnet.dtype": config.dtype, "wordnet.version": __version__,
            **{f"wordnet.override.{key}": str(value)
               for key, value in recipe.overridden().items()},
            **tracking.machine_tags(default_threads())})

    # -- stages ---------------------------------------------------------------------------

    def load(self):
        if self._dataset is None:                  # a sweep loads it once for all its runs
            self._dataset = load_dataset(self.data_dir)
        data = self._dataset
        self.echo(f"data: {len(data.train):,} training, {len(data.valid):,} validation and "
                  f"{len(data.test):,} test 4-grams over {len(data.vocab)} words "
                  f"({data.describe()})")
        # as tags: 64 characters each would crowd the compare view's parameters
        self.tracked.set_tags({f"wordnet.data.sha256.{name}": digest
                               for name, digest in data.files.items()})
        for split, context in (("train", "training"), ("valid", "validation"), ("test", "test")):
            file = self._file_of(split)
            self.tracked.log_dataset(data.split(split), split, context, data.path(file),
                                      data.files[file])

    def train(self):
        cfg, data = self.config, self.dataset
        total = cfg.iterations(len(data.train))
        check_space(self.out, space_needed(self._header(), total))
        check_memory(training_memory(self._header()))
        model, trainer, before = self._trainer()
        bar = self.progress(total) if self.progress else None

        window = []                                 # minibatch CEs since the last mean
        points = [len(before["valid_ce"])]          # validation points so far
        pruned = []                                 # (point, iteration, CE) when the judge stops it

        def on_iteration(it):
            # the C program's report, a running mean reset at each epoch; and, comparable
            # with valid/ce, the minibatches' own CEs, a mean of BATCH_CE_WINDOW each: one
            # point per minibatch would double what MLflow stores (0.1-0.2 ms a point)
            self.tracked.log_metric("train/ce_running_mean", it.train_ce, it.step)
            window.append(it.batch_ce)
            if len(window) == BATCH_CE_WINDOW or it.step == total:
                self.tracked.log_metric("train/batch_ce_mean10", sum(window) / len(window),
                                        it.step)
                window.clear()
            if it.batch == 1:
                self.tracked.log_metric("train/epoch", it.epoch, it.step)
            if bar:
                bar.update(it)

        def on_validation(step, valid_ce):
            self.tracked.log_metric("valid/ce", valid_ce, step)
            points[0] += 1
            if self.judge is not None and self.judge(points[0], valid_ce):
                pruned.append((points[0], step, valid_ce))
                trainer.request_stop()

        def on_checkpoint(so_far):
            try:
                self._save_resumable(model, trainer, before, so_far)
            except OSError as e:                    # a full disk: the last save stays
                self.echo(f"warning: no periodic checkpoint ({e}); training goes on")

        try:
            with stop_on_signals(trainer.request_stop):
                history = trainer.run(data.train, data.valid, on_iteration, on_validation,
                                      on_checkpoint)
        except (Diverged, ConfigError) as e:        # a failed run, as a failed check is;
            raise PipelineError(str(e)) from e      # a sweep goes on with the next one
        finally:
            if bar:
                bar.close()
        if history.stopped and pruned:
            self._save_resumable(model, trainer, before, history)  # the partial curve too
            point, step, valid_ce = pruned[0]
            why = (f"validation point {point} (iteration {step}): validation CE "
                   f"{valid_ce:.4f}, clearly worse than other trials there")
            self.tracked.set_tags({"wordnet.pruned": why})
            raise Pruned(f"pruned at {why}")
        if history.stopped:
            try:
                self._save_resumable(model, trainer, before, history)
            except OSError as e:                    # still an interruption, exit status 130
                self.echo(f"stopped at iteration {trainer.position.step}, but not saved ({e})")
                raise KeyboardInterrupt from None
            self.tracked.set_tags({"wordnet.stopped_at_iteration": trainer.position.step})
            self.echo(f"stopped at iteration {trainer.position.step}: the model and what "
                      f"resuming needs are in {self.out}/; `wordnet-pipeline run --resume "
                      f"--out {self.out}` continues")
            raise KeyboardInterrupt
        history.train_ce[:0], history.valid_ce[:0] = before["train_ce"], before["valid_ce"]
        self._model, self.step = model, len(history.train_ce)
        self.metrics, self._evaluated = {}, {}      # those of an earlier model are stale
        self._save_model(model)                     # a periodic save stays until this is done
        checkpoint.state_path(self.out / CHECKPOINT).unlink(missing_ok=True)
        self.folder.write_json(HISTORY, {"train_ce": history.train_ce,
                                         "valid_ce": history.valid_ce})
        self.painter.draw(plots.ce_curves, self.out / CE_PLOT, history.train_ce,
                          history.valid_ce, len(data.train) // cfg.batch_size,
                          title=self._plot_title())
        self.trained(model.W1, history, CHECKPOINT, "ce")
        example = " ".join(data.vocab.words[i] for i in data.test[0, :-1])
        self.tracked.log_model(self.out / CHECKPOINT, self.out / VOCAB, example,
                               self.recipe.model_name(), self.register)

    def validate(self):
        self._evaluate("valid")
        self._redraw_ce_curves()

    def test(self):
        self._evaluate("test")

    def reproduce(self):
        data = self.dataset
        ours = self._evaluated.get("test") or evaluate(self.model, data.test,
                                                       self.config.batch_size)
        report = reproduce(self.out / CHECKPOINT, self.model, self.recipe, data, ours)
        report.write(self.out)
        self.tracked.log_artifacts(self.out / REPORT, self.out / REPORT_JSON)
        self._record(report.metrics())
        self.tracked.tag_model({"wordnet.reproduce": "passed" if not report.failed else
                                f"failed: {'; '.join(c.name for c in report.failed)}"})
        for line in report.lines():
            self.echo(line)
        if report.failed:
            raise PipelineError(f"{len(report.failed)} reproduction check(s) failed: "
                                f"{'; '.join(c.name for c in report.failed)} "
                                f"(see {self.out / REPORT})")
        self.echo(f"reproduce: {report.verdict()}")

    # -- helpers --------------------------------------------------------------------------

    def trained(self, W1, history, checkpoint_name: str, loss: str) -> None:
        """What every model's training ends with: the map of its embeddings ``W1`` drawn,
        its ``history`` said and recorded (``train/final_ce``, or ``_loss``), and the
        folder's files logged (the plots when drawn: execute())."""
        self.painter.draw(plots.embedding_map, self.out / EMBEDDING_PLOT, W1,
                          self.dataset.vocab.words, title=self._plot_title(),
                          html=self.out / EMBEDDING_PAGE, also=[self.out / EMBEDDING_PAGE])
        self.echo(f"trained: {history.updates:,} updates in {history.seconds:.1f} s "
                  f"({history.updates_per_second:,.0f} updates/s), training "
                  f"{'CE' if loss == 'ce' else loss} {history.train_ce[-1]:.6f}")
        self._record({f"train/final_{loss}": history.train_ce[-1],
                      "perf/updates": history.updates, "perf/train_seconds": history.seconds,
                      "perf/updates_per_second": history.updates_per_second})
        self.tracked.log_artifacts(*(self.out / name for name in (
            checkpoint_name, VOCAB, RECIPE, HISTORY)))

    def _trainer(self):
        """(model, trainer, history so far): fresh, or where an interrupted run stopped."""
        if not self.resume:
            model = Model.initialize(self.config, len(self.dataset.vocab))
            if self.config.init_embeddings:
                model.W1[...] = self._embeddings_of(self.config.init_embeddings, model)
            return model, Trainer(model, self.config), {"train_ce": [], "valid_ce": []}
        path, cfg = self.out / CHECKPOINT, self.config
        header, params = self.folder.load_model(len(self.dataset.vocab))
        velocity, saved, before = checkpoint.load_state(path, header.shapes())
        try:
            position = Position.restore(saved, cfg, len(self.dataset.train) // cfg.batch_size)
            if len(before.get("train_ce", ())) != position.step or "valid_ce" not in before:
                raise ValueError(f"its history does not end at iteration {position.step}")
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{checkpoint.state_path(path)}: cannot resume "
                                             f"this recipe's run from it: {e}") from None
        model = Model(params, cfg.backend, dtype=cfg.dtype, activation=cfg.activation)
        trainer = Trainer(model, cfg, velocity, position)
        self.echo(f"resuming at iteration {trainer.position.step + 1} from {path}")
        return model, trainer, before

    def _embeddings_of(self, source: str, model: Model):
        """W1 of the model ``source`` (what --model takes, or an MLflow run's ID): the
        initial embeddings of ``model``, which must have its vocabulary and size."""
        from wordnet.runs.locate import load
        try:
            other = load(source, self.data_dir)
        except (LookupError, ValueError, OSError, tracking.TrackingError) as e:
            raise PipelineError(f"init_embeddings={source}: {e}") from None
        if tuple(other.vocab.words) != tuple(self.dataset.vocab.words):
            raise PipelineError(f"init_embeddings={source}: its vocabulary is not this data's")
        if other.W1.shape != model.W1.shape:
            raise PipelineError(f"init_embeddings={source}: its embeddings have "
                                f"{other.W1.shape[0]} dimensions, this model's "
                                f"{model.W1.shape[0]}: --set embedding_size="
                                f"{other.W1.shape[0]}")
        self.echo(f"W1 (the embeddings) from {source}")
        return other.W1

    @property
    def dataset(self):
        if self._dataset is None:
            self.load()
        return self._dataset

    @property
    def model(self) -> Model:
        if self._model is None:
            if not (self.out / CHECKPOINT).is_file():
                raise PipelineError(f"no 4-gram model in {self.out}/: run --stage train "
                                    "first, or pass --out DIR or --from-run RUN_ID")
            _, params = self.folder.load_model(len(self.dataset.vocab))
            self._model = Model(params, self.config.backend, dtype=self.config.dtype,
                                activation=self.config.activation)
            self.echo(f"model: {self.out / CHECKPOINT}")
        return self._model

    def _evaluate(self, split: str):
        m = evaluate(self.model, self.dataset.split(split), self.config.batch_size)
        self._evaluated[split] = m
        self.echo(f"{split}: CE {m.ce:.8f}, perplexity {m.perplexity:.4f}, top-1 "
                  f"{m.top1:.2%}, top-5 {m.top5:.2%} ({m.examples:,} examples)")
        figures = {f"{split}/{key}": value for key, value in m.as_dict().items()}
        if split == "valid":                # valid/ce is the curve of the validations
            figures["valid/final_ce"] = figures.pop("valid/ce")
            if self.step:                   # which ends with this one, after the training
                self.tracked.log_metric("valid/ce", m.ce, self.step)
        self._record(figures, dataset=self.dataset_link(split))

    def _plot_title(self) -> str:
        """Names the run in its plots: the MLflow run's name ("lr=0.2 · quick · fast"),
        else the folder's, with the recipe and the backend."""
        if self.tracked.run_name:
            return self.tracked.run_name
        return f"{self.out.name} · {self.recipe.name} · {self.config.backend}"

    def _redraw_ce_curves(self):
        """The CE plot again, with the final model's validation CE (the train stage
        draws it before there is one)."""
        history = self.folder.read_json(HISTORY)
        if not history:
            return                                  # a model trained elsewhere: no curves
        self.painter.draw(plots.ce_curves, self.out / CE_PLOT, history["train_ce"],
                          [tuple(point) for point in history["valid_ce"]],
                          len(self.dataset.train) // self.config.batch_size,
                          title=self._plot_title(),
                          final_valid_ce=self.metrics["valid/final_ce"])

    def _record(self, metrics: dict, dataset=None):
        """Final figures: into metrics.json, and to MLflow at step 0, which its UI draws as
        bars comparing runs (a metric at a later step is a line chart, of one dot); linked
        to the model this run logged, and to the ``dataset`` (name, digest) they are of."""
        self.metrics.update(metrics)
        self.folder.write_json(METRICS, self.metrics)
        self.tracked.log_metrics(metrics, step=0, dataset=dataset)

    def dataset_link(self, split: str) -> tuple[str, str]:
        """(name, digest) of the dataset a ``split``'s figures are about, as logged by load."""
        return split, self.dataset.files[self._file_of(split)][:20]

    def _file_of(self, split: str) -> str:
        """The data file ``split`` was read from: its CSV file, or raw_sentences.txt."""
        csv = f"{split}_data.csv"
        return csv if csv in self.dataset.files else "raw_sentences.txt"

    def _header(self) -> checkpoint.Header:
        data = self.dataset
        return checkpoint.Header.for_run(self.config, len(data.vocab),
                                         (len(data.train), len(data.valid), len(data.test)))

    def _save_resumable(self, model: Model, trainer: Trainer, before: dict, history):
        """The model, the history, then the state that resuming needs (naming the
        model it belongs to): a kill at any point leaves a pair --resume accepts or
        refuses, never a wrong one."""
        so_far = {"train_ce": before["train_ce"] + history.train_ce,
                  "valid_ce": before["valid_ce"] + [list(v) for v in history.valid_ce]}
        self._save_model(model)
        self.folder.write_json(HISTORY, so_far)
        checkpoint.save_state(self.out / CHECKPOINT, trainer.velocity,
                              dataclasses.asdict(trainer.position), so_far)

    def _save_model(self, model: Model):
        self.folder.save_model(self._header(), model.params(), self.dataset.vocab.words,
                               self.recipe)
        self.wrote_model = True


def run(recipe: Recipe, overrides: dict[str, str], stages, out: Path, data_dir: Path | None,
        track: bool = False, run_name: str | None = None, from_run: str | None = None,
        echo=print, progress=None, dataset=None, nested: bool = False,
        resume: bool = False, register: str | None = None,
        parent_run_id: str | None = None, judge=None) -> dict:
    """Run ``stages`` as one (MLflow) run; record how it ended in ``out/run.json``.

    The data is loaded first: when it cannot be, no folder, manifest or MLflow
    run is made.  A run that fails or is interrupted leaves the folder's manifest
    as it was, unless it changed the folder's model (or there was none): a stage
    run alone on a finished run's folder never hides that run's model.  The
    MLflow run is named ``run_name``, else by what distinguishes it
    (:meth:`Recipe.label`), with the stages when it trains nothing; nested under
    the active run (``nested``) or under ``parent_run_id`` (a sweep's trial run by
    another process).  ``judge(point, valid_ce)``, a sweep's pruner, is asked at each
    validation point whether to stop (:class:`Pruned`: the manifest says PRUNED).
    """
    dataset = dataset or load_dataset(data_dir)
    check_writable(out)
    folder = RunDir(out)
    with folder.lock():
        return _run(recipe, overrides, stages, out, data_dir, track, run_name, from_run, echo,
                    progress, dataset, nested, resume, register, folder, parent_run_id, judge)


def _run(recipe, overrides, stages, out, data_dir, track, run_name, from_run, echo, progress,
         dataset, nested, resume, register, folder, parent_run_id, judge) -> dict:
    status, run_id, pipeline_run, tracked = "FAILED", None, None, NoRun()
    try:
        if from_run:
            download_run(from_run, out)
        if resume and folder.recipe() is None:       # e.g. a window scorer's, interrupted
            raise PipelineError(f"nothing to resume in {out}/: no training saved its model "
                                "and recipe there")
        if "train" not in stages or resume:
            recipe = folder.recipe() or recipe         # the model's, not the command line's
        recipe = with_overrides(recipe, overrides)
        if not run_name:
            run_name = " · ".join([recipe.label()] + ([] if "train" in stages else list(stages)))
        parent = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
        context = (tracking.start_run(run_name, tags=parent, nested=nested) if track
                   else nullcontext(NoRun()))
        with context as tracked:
            run_id, run_name = tracked.run_id, tracked.run_name or run_name
            pipeline_run = PipelineRun(recipe, data_dir, out, tracked, echo, progress,
                                       dataset, resume, register, judge)
            metrics = pipeline_run.execute(stages)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Pruned:
        status = "PRUNED"
        raise
    finally:
        changed = pipeline_run is not None and pipeline_run.wrote_model
        lost = getattr(tracked, "lost", None)
        if status == "FINISHED" or changed or not folder.has_manifest():
            try:
                folder.write_manifest(status=status, recipe=recipe.name, stages=list(stages),
                                      mlflow_run_id=run_id,
                                      mlflow_run_name=run_name if run_id else None,
                                      **({"mlflow_not_logged": lost} if lost else {}))
            except OSError as e:                # a full disk: the run's own error goes on
                if status == "FINISHED":
                    raise
                echo(f"warning: {folder / MANIFEST} not written ({e.strerror})")
    if lost:
        raise NotLogged(f"the run finished in {out}/, but MLflow did not take all of it "
                        f"({lost}); `wordnet-pipeline log --out {out}` logs it when the "
                        "store is back")
    return metrics


def download_run(run_id: str, out: Path) -> None:
    """The checkpoint (model.bin, or model.npz), vocabulary and hyperparameters of an
    MLflow run, into ``out``."""
    import mlflow
    try:
        logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    except Exception as e:                     # MLflow and OS errors alike
        raise PipelineError(f"run {run_id}: cannot list its files "
                            f"({tracking.first_line(e)})") from None
    model = NPZ_CHECKPOINT if NPZ_CHECKPOINT in logged else CHECKPOINT
    for name in (model, VOCAB, RECIPE):
        try:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                dst_path=str(out))
        except Exception as e:                 # MLflow and OS errors alike
            raise PipelineError(f"run {run_id}: cannot download {name} "
                                f"({tracking.first_line(e)})") from None


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
