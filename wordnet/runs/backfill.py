"""Logging a run's folder to MLflow after the run: ``wordnet-pipeline log --out DIR``,
for a run whose tracking was lost on the way (a tracking server gone mid-run), or that
ran with ``--no-tracking``.

The folder's MLflow run, if the store holds it, else a new one, gets what the live
run would have logged, read from the folder: the parameters and tags, the datasets, the training CE (the running
mean) and the validation CEs at their iterations, the epochs, the final figures
(linked to the model and the datasets), the files, the model (registered) and
the reproduction verdict.  The minibatches' own CEs are not kept in the
folder: ``train/batch_ce_mean10`` is missing.  A folder logged already is not logged
again: ``log`` twice makes one run, and one model version.
"""
from __future__ import annotations

from pathlib import Path

from wordnet import tracking
from wordnet.runs import ownership, publish
from wordnet.runs.pipeline import PipelineRun, RunOptions
from wordnet.runs.rundir import (
    CE_PLOT,
    CHECKPOINT,
    EMBEDDING_PAGE,
    EMBEDDING_PLOT,
    HISTORY,
    MANIFEST,
    NPZ_CHECKPOINT,
    RECIPE,
    REPORT,
    REPORT_JSON,
    VOCAB,
    RunDir,
)
from wordnet.runs.stages import NotLogged, PipelineError

FILES = (CHECKPOINT, NPZ_CHECKPOINT, VOCAB, RECIPE, HISTORY, CE_PLOT, EMBEDDING_PLOT,
         EMBEDDING_PAGE, REPORT, REPORT_JSON)


def log_folder(out: Path, data_dir: Path | None, dataset, register: str | None,
               echo=print) -> str:
    """Log the finished run in ``out`` to MLflow (the active experiment, for a new run);
    point its run.json at it.  Returns the run's page in MLflow's UI."""
    folder = RunDir(out)
    with folder.lock():                       # no run may change the folder meanwhile
        return _log_folder(out, folder, data_dir, dataset, register, echo)


def _log_folder(out, folder, data_dir, dataset, register, echo) -> str:
    manifest, recipe = folder.read_json(MANIFEST), folder.recipe()
    if not manifest or recipe is None or not folder.has_model():
        raise PipelineError(f"{out}/ holds no trained model with its run.json and recipe.json: "
                            "nothing to log")
    _, earlier = ownership.adopt(folder, echo)   # a run left RUNNING is ended first
    if earlier and not manifest.get("mlflow_not_logged"):
        echo(f"{out}/ is logged already, as MLflow run {manifest.get('mlflow_run_name')!r}")
        return tracking.page_of(earlier)
    name = manifest.get("mlflow_run_name") or recipe.label()
    stages = manifest.get("stages", [])
    with tracking.start_run(name, run_id=earlier) as tracked:
        ownership.hold(folder, tracked)
        run = PipelineRun(recipe, out, RunOptions(data_dir=data_dir, dataset=dataset,
                                                  register=register, echo=echo), tracked)
        run.describe(stages)
        tracked.set_tags({"wordnet.logged_later": "true"})
        run.load()
        history = folder.read_json(HISTORY) or {"train_ce": [], "valid_ce": []}
        per_epoch = run.stages.training_examples() // recipe.config.batch_size
        names = run.kind.figures
        ownership.complete_curves(run, history, per_epoch)
        if run.kind.predicts and tracked.model_id is None:   # next words: the pyfunc model
            publish.log_model(run)
        _log_finals(tracked, run, run.metrics, len(history["train_ce"]), names)
        tracked.log_artifacts(*(out / name for name in FILES if (out / name).is_file()))
        report = folder.read_json(REPORT_JSON)
        if report:
            failed = [c["name"] for c in report["checks"] if c["result"] == "FAIL"]
            tracked.tag_model({"wordnet.reproduce": f"failed: {'; '.join(failed)}" if failed
                               else "passed"})
        if manifest.get("status") == "FINISHED" and not (report and failed):
            publish.register_model(run, stages)
    ownership.release(folder, tracked)
    if tracked.lost:
        raise NotLogged(f"{out}/ was not logged either ({tracked.lost})")
    manifest.pop("mlflow_not_logged", None)
    folder.write_json(MANIFEST, manifest | {"mlflow_run_id": tracked.run_id,
                                            "mlflow_run_name": tracked.run_name})
    return tracked.page


def _log_finals(tracked, run: PipelineRun, metrics: dict, steps: int, names) -> None:
    """At step 0, as the live run logs them (bars in the UI); valid's and test's linked
    to their dataset.  The validation stage's figure (valid/final_ce) also ends the
    validation curve (valid/ce), at the training's last step, ``steps``."""
    if names.select_by in metrics and steps and steps not in tracked.steps(names.valid_curve):
        run.valid_point(steps, metrics[names.select_by])
    for split in ("valid", "test"):
        figures = {k: v for k, v in metrics.items() if k.startswith(f"{split}/")}
        if figures:
            tracked.log_metrics(figures, step=0, dataset=run.dataset_link(split))
    others = {k: v for k, v in metrics.items() if not k.startswith(("valid/", "test/"))}
    if others:
        tracked.log_metrics(others, step=0)
