"""A run folder's MLflow run: one per trained model, never left RUNNING.

While a command has an MLflow run open on a folder, the folder's ``.mlflow_run``
names it.  A command that ends normally, or fails, or is interrupted, ends its run
and removes the file; one that is killed (SIGKILL, a power cut) or loses its store
leaves both behind.  The next command on the folder (under its lock: nothing else
is writing to it) ends that run KILLED, saying why, before it does anything else.

A later command on the folder's model continues its run rather than making
another: a stage run alone (``--stage test --out DIR``), ``--resume`` (the curve
goes on where the interrupted one stopped), ``--from-run`` (the run named), and
``log``.
"""
from __future__ import annotations

from wordnet import tracking
from wordnet.runs.rundir import MANIFEST, OPEN_RUN, RunDir, RunFolderError

ORPHAN = ("its command stopped without ending it (killed, or its tracking store was lost); "
          "ended by the next command on {folder}")


def adopt(folder: RunDir, echo=print) -> tuple[str | None, str | None]:
    """End the MLflow run a killed command left RUNNING on ``folder`` (in the active
    store).  Returns the runs a later command may continue, if the active store holds
    them: (that one, the manifest's: the run of the folder's model)."""
    left = orphan = None
    try:
        left = folder.read_json(OPEN_RUN)
    except RunFolderError as e:                 # e.g. hand-edited: it names no run to end
        echo(f"warning: {e}; ignored")
    if isinstance(left, dict) and isinstance(left.get("run_id"), str):
        if tracking.end_orphan(left["run_id"], ORPHAN.format(folder=folder)):
            echo(f"MLflow run {left['run_id']} was left RUNNING by a command that did not "
                 "end; it is now KILLED")
        folder.forget(OPEN_RUN)
        orphan = tracking.continuable(left["run_id"])
    manifest = folder.read_json(MANIFEST) or {}
    return orphan, tracking.continuable(manifest.get("mlflow_run_id"))


def hold(folder: RunDir, tracked) -> None:
    """``folder`` names ``tracked``, an MLflow run just started, as open."""
    if tracked.run_id:
        import mlflow
        folder.write_json(OPEN_RUN, {"run_id": tracked.run_id,
                                     "tracking_uri": mlflow.get_tracking_uri()})


def release(folder: RunDir, tracked) -> None:
    """``tracked`` ended: ``folder`` no longer names it, unless MLflow did not take all
    of it (its end may be lost too: the next command ends it)."""
    if getattr(tracked, "run_id", None) and tracked.lost is None:
        folder.forget(OPEN_RUN)


def complete_curves(run, history: dict, batches_per_epoch: int) -> None:
    """The points of a training's ``history`` (history.json) that ``run``'s MLflow run
    lacks (``run``: a PipelineRun): all of them for a run logged later, those a killed
    command had not sent for a run resumed.  As a live run logs them: the epochs when
    there are two or more, the validation curve from its second point on."""
    tracked, figures = run.tracked, run.kind.figures
    have = tracked.steps(figures.train_curve)
    starts = range(1, len(history["train_ce"]) + 1, batches_per_epoch)
    for step, value in enumerate(history["train_ce"], 1):
        if step not in have:
            tracked.log_metric(figures.train_curve, value, step)
    if len(starts) > 1:
        have = tracked.steps("train/epoch")
        for step in starts:
            if step not in have:
                tracked.log_metric("train/epoch", (step - 1) // batches_per_epoch + 1, step)
    have = tracked.steps(figures.valid_curve)
    for step, value in history["valid_ce"]:
        if step not in have:
            run.valid_point(step, value)
