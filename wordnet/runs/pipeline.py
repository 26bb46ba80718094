"""The pipeline: the stages load, train, validate, test and reproduce, and sweeps.

A recipe (:mod:`wordnet.runs.recipes`) fixes the hyperparameters; a run executes
some of the stages, in that order, and writes into its folder
(:mod:`wordnet.runs.rundir`).  A stage run alone picks up the model and its
hyperparameters from that folder.  This module orchestrates; the checks of
``reproduce`` are in :mod:`wordnet.runs.reproduce`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from wordnet import __version__, plots, tracking
from wordnet.data.dataset import load_dataset
from wordnet.models import checkpoint, registry
from wordnet.models.base import check_threads, default_threads, threads_fixed
from wordnet.runs import ownership, publish
from wordnet.runs.recipes import Recipe, with_overrides
from wordnet.runs.rundir import (
    CHECKPOINT,
    EMBEDDING_PAGE,
    EMBEDDING_PLOT,
    HISTORY,
    MANIFEST,
    METRICS,
    NPZ_CHECKPOINT,
    RECIPE,
    VOCAB,
    RunDir,
    check_writable,
)
from wordnet.runs.stages import NotLogged, PipelineError, Pruned
from wordnet.tracking import NoRun

STAGES = ("load", "train", "validate", "test", "reproduce")


@dataclass(frozen=True)
class RunOptions:
    """How a run goes, apart from its recipe, stages and folder: what the command line,
    a sweep's trials and ``log`` give it."""
    data_dir: Path | None = None        # None: the copy shipped with the package
    dataset: object = None              # the data, when loaded already (a sweep's trials)
    track: bool = False                 # log to MLflow's active store and experiment
    run_name: str | None = None         # of the MLflow run [default: Recipe.label()]
    from_run: str | None = None         # an MLflow run whose model the stages take
    resume: bool = False                # continue the training interrupted in the folder
    register: str | None = None         # a registered model's name, for the trained model
    nested: bool = False                # the MLflow run under the active one (a sweep's)
    parent_run_id: str | None = None    # ... or under this one (a trial in a process)
    judge: Callable | None = None       # a sweep's pruner: (point, value) -> why stop, or None
    threads: int | None = None          # of the model's kernels [default: default_threads()]
    echo: Callable = print
    progress: Callable | None = None    # (total iterations, loss=name) -> a progress bar
    painter: object = None              # the plots' Painter, started early [default: a new one]

    def __post_init__(self):
        if self.threads is not None:
            check_threads(self.threads)         # ThreadsError: not 1 to max_threads()


class PipelineRun:
    """The stages of one run, sharing the data, the model and the output folder."""

    def __init__(self, recipe: Recipe, out: Path, options: RunOptions = RunOptions(),
                 tracked=None):
        self.recipe, self.config = recipe, recipe.config
        self.kind = registry.of(recipe.config)      # the model's kind: its figures and stages
        self.options = options
        self.data_dir = options.data_dir
        self.out = Path(out)
        self.folder = RunDir(out)
        self.tracked = tracked or NoRun()           # the MLflow run, if any
        self.echo, self.progress = options.echo, options.progress
        self._dataset, self._stages = options.dataset, None
        self.resume = options.resume                # continue an interrupted training
        self.register = options.register            # a registered model's name, for the model
        self.judge = options.judge                  # a sweep's pruner: (point, CE) -> why stop
        self.threads = options.threads              # None: up to default_threads(), as pays
        self.wrote_model = False                    # whether this run changed the folder's model
        self.planned = ()                           # the stages execute() runs
        self.step = 0                               # the last training iteration: valid/ce ends there
        self.valid_points, self._valid_logged = [], 0   # the validation curve: (step, value)
        self.metrics = self.folder.read_json(METRICS) or {}
        self.painter = options.painter or plots.Painter()   # the plots, drawn beside the run

    def execute(self, stages) -> dict:
        config, recipe = self.config, self.recipe
        self.planned = tuple(stages)                # the stages this command runs
        self.describe(stages)
        self.echo(f"{', '.join(stages)} ({recipe.name} recipe, {config.backend} "
                  f"backend, {config.dtype}) -> {self.out}/")
        if self.tracked.run_id:
            self.echo(f"MLflow run {self.tracked.run_name!r}: {self.tracked.page}")
        try:
            if "train" in stages:
                self._painter_ready()               # before "data:", which the training follows
            self.load()                             # every stage needs the data
            for stage in STAGES[1:]:
                if stage in stages:
                    getattr(self.stages, stage)()
            self.tracked.log_artifacts(*self.painter.wait())
            if (self.tracked.run_id and self.tracked.model_id is None and self.kind.predicts
                    and self.folder.has_model()):
                publish.log_model(self)             # a model trained untracked, or elsewhere
            publish.register_model(self, stages)    # every stage finished
        finally:
            self.painter.close()                    # after an error: stops the drawing
        return self.metrics

    def _painter_ready(self) -> None:
        """The painter's warm-up (Painter.warm_up), if one was started, ended: the training
        has the cores to itself.  A painter whose process died is left to start again."""
        try:
            self.painter.wait()
        except plots.PlotError as e:
            self.echo(f"warning: the plots' process failed ({e}); it starts again to draw")

    def describe(self, stages) -> None:
        """The run's parameters, and the tags that describe it in MLflow's UI.  A run
        continued (a later command on its model) keeps what it has: its parameters
        (MLflow's cannot change), its description, the machine it trained on."""
        config, recipe, commit = self.config, self.recipe, tracking.git_commit()
        params = dataclasses.asdict(config) | {
            "recipe": recipe.name, "wordnet_version": __version__, "git_commit": commit}
        overridden = {f"wordnet.override.{key}": str(value)
                      for key, value in recipe.overridden().items()}
        self.tracked.log_params({k: v for k, v in params.items()
                                 if k not in self.tracked.params})
        if self.tracked.continued:
            done = self.tracked.tag("wordnet.stages", "").split(",")
            self.tracked.set_tags({"wordnet.stages": ",".join(
                s for s in STAGES if s in done or s in stages), **overridden})
            return
        self.tracked.set_tags({
            "mlflow.note.content": recipe.note(stages),          # the run's description in the UI
            "mlflow.source.git.commit": commit, "wordnet.recipe": recipe.name,
            "wordnet.stages": ",".join(stages), "wordnet.backend": config.backend,
            "wordnet.dtype": config.dtype, "wordnet.version": __version__, **overridden,
            **tracking.machine_tags(self.threads or default_threads(),
                                    fixed=self.threads is not None or threads_fixed())})

    def load(self):
        if self._dataset is None:                  # a sweep loads it once for all its runs
            self._dataset = load_dataset(self.data_dir)
        data = self._dataset
        train, valid, test = (self.stages.examples_in(s) for s in ("train", "valid", "test"))
        self.echo(f"data: {train:,} training, {valid:,} validation and {test:,} test "
                  f"{self.kind.examples} over {len(data.vocab):,} words ({data.describe()})")
        # as tags: 64 characters each would crowd the compare view's parameters
        self.tracked.set_tags({f"wordnet.data.sha256.{name}": digest
                               for name, digest in data.files.items()})
        if data.manifest is not None:       # a folder `data build` made: from what, and how
            self.tracked.log_artifacts(data.source / "manifest.json", folder="data")
            sources = ", ".join(Path(s["path"]).name for s in data.manifest["sources"])
            self.tracked.set_tags({"wordnet.data.folder": str(data.source.resolve()),
                                   "wordnet.data.sources": sources[:500]})
        for split, context in (("train", "training"), ("valid", "validation"), ("test", "test")):
            file = data.file_of(split)
            self.tracked.log_dataset(data.split(split), data.dataset_name(split), context,
                                      data.path(file), data.files[file])

    # -- what the stages of every kind share ------------------------------------------

    def trained(self, W1, history) -> None:
        """What every model's training ends with, its model saved: the map of its
        embeddings ``W1`` drawn, its ``history`` said and recorded (``train/final_ce``, or
        ``_loss``: the figures of an earlier model are stale), and the folder's files
        logged (the plots when drawn: execute())."""
        self.step, self.metrics = len(history.train_ce), {}
        self.painter.draw(plots.embedding_map, self.out / EMBEDDING_PLOT, W1,
                          self.dataset.vocab.words, title=self.plot_title(),
                          html=self.out / EMBEDDING_PAGE, also=[self.out / EMBEDDING_PAGE])
        figures = self.kind.figures
        self.echo(f"trained: {history.updates:,} updates in {history.seconds:.1f} s "
                  f"({history.updates_per_second:,.0f} updates/s), training "
                  f"{figures.loss_name} {history.train_ce[-1]:.6f}")
        self.record({figures.train_final: history.train_ce[-1],
                      "perf/updates": history.updates, "perf/train_seconds": history.seconds,
                      "perf/updates_per_second": history.updates_per_second})
        self.tracked.log_artifacts(*(self.out / name for name in (
            self.kind.checkpoint, VOCAB, RECIPE, HISTORY)))

    def record_evaluation(self, split: str, figures: dict, dataset=None) -> None:
        """A stage's figures on ``split`` (``{"ce": ...}``) recorded as ``split/name``;
        the validate stage's figure on the final model is ``select_by``
        (``valid/final_ce``), and the last point of the validation curve."""
        figures = {f"{split}/{name}": value for name, value in figures.items()}
        names = self.kind.figures
        if split == "valid":
            figures[names.select_by] = value = figures.pop(names.valid_curve)
            if self.step:                   # the curve ends with it, after the training
                self.valid_point(self.step, value)
        self.record(figures, dataset=dataset)

    def valid_point(self, step: int, value: float) -> None:
        """A point of the validation curve, logged once the curve has two: MLflow draws
        a lone point at a step >= 1 as a line chart of one dot on an absurd axis (the
        final figure is at step 0 anyway, ``valid/final_ce``)."""
        self.valid_points.append((step, value))
        if len(self.valid_points) >= 2:
            self.log_valid_curve()

    def log_valid_curve(self) -> None:
        """The validation curve's points not logged yet, however few (a pruned trial's:
        what its pruner judged, which a resumed sweep replays)."""
        for step, value in self.valid_points[self._valid_logged:]:
            self.tracked.log_metric(self.kind.figures.valid_curve, value, step)
        self._valid_logged = len(self.valid_points)

    def embeddings_of(self, source: str, model):
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
    def stages(self):
        """The stages of this run's model kind (its ``ModelKind.stages``)."""
        if self._stages is None:
            self._stages = self.kind.run_stages()(self)
        return self._stages

    @property
    def dataset(self):
        if self._dataset is None:
            self.load()
        return self._dataset

    def plot_title(self) -> str:
        """Names the run in its plots: the MLflow run's name ("lr=0.2 · quick · fast"),
        else the folder's, with the recipe and the backend."""
        if self.tracked.run_name:
            return self.tracked.run_name
        return f"{self.out.name} · {self.recipe.name} · {self.config.backend}"

    def record(self, metrics: dict, dataset=None):
        """Final figures: into metrics.json, and to MLflow at step 0, which its UI draws as
        bars comparing runs (a metric at a later step is a line chart, of one dot); linked
        to the model this run logged, and to the ``dataset`` (name, digest) they are of."""
        self.metrics.update(metrics)
        self.folder.write_json(METRICS, self.metrics)
        self.tracked.log_metrics(metrics, step=0, dataset=dataset)

    def dataset_link(self, split: str) -> tuple[str, str]:
        """(name, digest) of the dataset a ``split``'s figures are about, as logged by load."""
        data = self.dataset
        return data.dataset_name(split), data.files[data.file_of(split)][:20]


def run(recipe: Recipe, overrides: dict[str, str], stages, out: Path,
        options: RunOptions = RunOptions()) -> dict:
    """Run ``stages`` as one (MLflow) run; record how it ended in ``out/run.json``.

    The data is loaded first: when it cannot be, no folder, manifest or MLflow
    run is made.  A run that fails or is interrupted leaves the folder's manifest
    as it was, unless it changed the folder's model (or there was none): a stage
    run alone on a finished run's folder never hides that run's model.  The
    MLflow run is named ``options.run_name``, else by what distinguishes it
    (:meth:`Recipe.label`), with the stages when it trains nothing; nested under
    the active run (``nested``) or under ``parent_run_id`` (a sweep's trial run by
    another process).  ``judge(point, valid_ce)``, a sweep's pruner, is asked at each
    validation point whether to stop (:class:`Pruned`: the manifest says PRUNED).
    """
    if options.dataset is None:
        options = dataclasses.replace(options, dataset=load_dataset(options.data_dir))
    check_writable(out)
    folder = RunDir(out)
    with folder.lock():
        return _run(recipe, overrides, stages, Path(out), folder, options)


def _run(recipe, overrides, stages, out: Path, folder: RunDir, options: RunOptions) -> dict:
    status, run_id, pipeline_run, tracked = "FAILED", None, None, NoRun()
    resume, run_name, echo = options.resume, options.run_name, options.echo
    try:
        if options.from_run:
            download_run(options.from_run, out)
        if resume:                                   # said before any MLflow run is made
            check_resumable(folder)
        if "train" not in stages or resume:
            recipe = folder.recipe() or recipe         # the model's, not the command line's
        recipe = with_overrides(recipe, overrides)
        if not run_name:
            run_name = " · ".join([recipe.label()] + ([] if "train" in stages else list(stages)))
        parent = ({"mlflow.parentRunId": options.parent_run_id} if options.parent_run_id
                  else None)
        context = (tracking.start_run(run_name, tags=parent, nested=options.nested,
                                      run_id=_continued(folder, stages, options))
                   if options.track else nullcontext(NoRun()))
        with context as tracked:
            ownership.hold(folder, tracked)
            run_id, run_name = tracked.run_id, tracked.run_name or run_name
            pipeline_run = PipelineRun(recipe, out, options, tracked)
            metrics = pipeline_run.execute(stages)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Pruned:
        status = "PRUNED"
        raise
    finally:
        ownership.release(folder, tracked)
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


def _continued(folder: RunDir, stages, options: RunOptions) -> str | None:
    """The MLflow run this command continues: the model's, when it trains no new one
    (a stage run alone: the folder's; --resume: the interrupted training's; --from-run:
    that run); None: a new run.  A run a killed command left RUNNING on the folder is
    ended first (:func:`ownership.adopt`)."""
    orphan, models = ownership.adopt(folder, options.echo)
    if options.from_run:
        return tracking.continuable(options.from_run)
    if options.resume:
        return orphan or models
    return models if "train" not in stages else None


def check_resumable(folder: RunDir) -> None:
    """PipelineError unless an interrupted training in ``folder`` can go on: its model
    and recipe saved, of a kind that resumes, with the state resuming needs."""
    saved = folder.recipe()
    if saved is None:                                # e.g. a window scorer's, interrupted
        raise PipelineError(f"nothing to resume in {folder}/: no training saved its model "
                            "and recipe there")
    kind = registry.of(saved.config)
    if not kind.resumes:
        raise PipelineError(f"a {kind.name} run does not resume: train it again, without "
                            "--resume")
    if not checkpoint.state_path(folder / kind.checkpoint).is_file():
        raise PipelineError(f"nothing to resume in {folder}/: its training ended (there is "
                            f"no {checkpoint.state_path(folder / kind.checkpoint).name})")


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
