"""What a run publishes of a model that predicts next words: its logged model (MLflow's
pyfunc model of :mod:`wordnet.serving.pyfunc`, which ``mlflow models serve`` serves),
and, once every stage of the command finished, its version in the model registry
(:mod:`wordnet.tracking.model_registry`), described by its figures."""
from __future__ import annotations

from wordnet.runs.rundir import CHECKPOINT, REPORT_JSON, VOCAB


def log_model(run) -> None:
    """The folder's model as ``run``'s logged model (a PipelineRun's), named as the
    MLflow run; its input example the first test context."""
    words = run.dataset.vocab.words
    example = " ".join(words[i] for i in run.dataset.test[0, :-1])
    run.tracked.log_model(run.out / CHECKPOINT, run.out / VOCAB, example,
                          run.recipe.model_name(run.tracked.run_name))


def register_model(run, stages) -> None:
    """``run``'s logged model as a version of the registered model ``run.register`` (one
    per MLflow run: a later command on it updates it), once its ``stages`` finished;
    aliased ``reproduced`` when they reproduced the C program with every check
    enforced and passed, and ``best`` when its validation figure is the lowest."""
    if not (run.register and run.kind.predicts):
        return
    report = run.folder.read_json(REPORT_JSON) if "reproduce" in stages else None
    reproduced = bool(report) and all(c["result"] == "pass" for c in report["checks"])
    figures = run.kind.figures
    value = run.metrics.get(figures.select_by)
    run.tracked.register(run.register, description(run, report, reproduced),
                         (figures.select_by, value) if value is not None else None,
                         reproduced)
    if run.tracked.version:
        aliases = "".join(f", @{alias}" for alias in run.tracked.aliases)
        run.echo("registered: models:/{}/{}".format(*run.tracked.version) + aliases)


def description(run, report, reproduced: bool) -> str:
    """The version's description: the run, its recipe and what overrode it, its figures
    (those a sweep's summary shows), the reproduction's verdict."""
    changed = run.recipe.overridden()
    overridden = f" with {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else ""
    shown = ", ".join(f"{name} {run.metrics[name]:.6g}" for name in run.kind.figures.shown
                      if name in run.metrics)
    verdict = (" Reproduction: every check passed." if reproduced else
               " Reproduction: not every check enforced." if report else "")
    return (f"{run.tracked.run_name}: the {run.recipe.name} recipe{overridden}. "
            f"{shown or 'Not evaluated yet'}.{verdict}")
