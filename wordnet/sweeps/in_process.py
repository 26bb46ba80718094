"""A sweep's trials one after the other in this process (``--jobs 1``): the data
loaded once, Ctrl-C reaching the running trial itself, each trial's model with the
sweep's ``--threads``."""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial

from wordnet.models.base import THREADS_ENV
from wordnet.runs.pipeline import run
from wordnet.runs.rundir import MANIFEST, RunDir
from wordnet.runs.stages import PipelineError, Pruned
from wordnet.sweeps.executor import TrialSpec
from wordnet.sweeps.search import Trial
from wordnet.sweeps.trials import trial_row


class InThisProcess:
    """One trial after the other, in this process."""

    slots = 1

    def __init__(self, spec: TrialSpec):
        self.spec = spec

    def describe(self) -> str:
        return "one after the other"

    def __call__(self, trial: Trial) -> dict:
        spec = self.spec
        spec.echo(f"== {trial.folder}")
        judge = partial(spec.search.report, trial.number)     # (point, CE) -> stop?
        status, metrics, error = "FINISHED", {}, None
        try:
            with threads(spec.options.threads):
                metrics = run(spec.recipe, trial.values, spec.stages, spec.out / trial.folder,
                              spec.data_dir, spec.where is not None, spec.label(trial.values),
                              echo=spec.echo, progress=spec.progress, dataset=spec.dataset,
                              nested=True, judge=judge)
        except Pruned as e:
            status, error = "PRUNED", str(e)
            spec.echo(f"{trial.folder}: {e}")
        except PipelineError as e:
            status, error = "FAILED", str(e)
            spec.echo(f"{trial.folder}: {e}")
        manifest = RunDir(spec.out / trial.folder).read_json(MANIFEST) or {}
        return trial_row(trial, spec.label(trial.values), status, metrics, manifest, error)

    def stop(self):
        pass                                         # Ctrl-C reaches the run itself

    def close(self):
        pass


@contextmanager
def threads(count: int | None):
    """The OpenMP threads of the models made inside: ``count`` (None: as they are).

    A model takes its threads from :func:`wordnet.models.base.default_threads`, which
    reads $WORDNET_THREADS; a run made here has no parameter for them, so the trial's
    count is that variable for the trial's duration, and what it was afterwards."""
    if count is None:
        yield
        return
    before = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(count)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before
