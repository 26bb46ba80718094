"""A sweep's trials one after the other in this process (``--jobs 1``): the data
loaded once, Ctrl-C reaching the running trial itself, each trial's model with the
sweep's ``--threads``."""
from __future__ import annotations

from functools import partial

from wordnet.runs.pipeline import RunOptions, run
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
            metrics = run(spec.recipe, trial.values, spec.stages, spec.out / trial.folder,
                          RunOptions(data_dir=spec.data_dir, dataset=spec.dataset,
                                     track=spec.where is not None,
                                     run_name=spec.label(trial.values), nested=True,
                                     judge=judge, threads=spec.options.threads,
                                     echo=spec.echo, progress=spec.progress))
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

