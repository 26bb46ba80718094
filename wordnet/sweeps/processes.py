"""A sweep's trials as processes on this machine, ``--jobs`` at once, and the rules of
``--executor local`` (:class:`Local`): ``--jobs 1`` runs them in this process instead
(:mod:`wordnet.sweeps.in_process`)."""
from __future__ import annotations

import dataclasses
import os
import threading
from functools import partial

from wordnet.errors import ConfigError
from wordnet.models.base import check_threads, default_threads
from wordnet.runs.rundir import RunDir
from wordnet.sweeps.executor import Executor, Options, TrialSpec
from wordnet.sweeps.in_process import InThisProcess
from wordnet.sweeps.search import Trial
from wordnet.sweeps.trials import (
    THREADS,
    TRIAL_LOG,
    finished_trial,
    run_command,
    run_process,
    thread_env,
)


class Local:
    """``--executor local``: :class:`InThisProcess` with ``--jobs 1``, else :class:`Processes`."""

    @staticmethod
    def configure(options: Options) -> Options:
        """``--threads`` defaults to the cores shared among ``--jobs``, else THREADS;
        ``--jobs`` to the cores shared among the trials' threads."""
        if options.ray_address:
            raise ConfigError("--ray-address needs --executor ray")
        cores = default_threads()               # $WORDNET_THREADS checked
        if options.threads is not None:
            check_threads(options.threads, "--threads")
        threads = options.threads or (max(1, cores // options.jobs) if options.jobs else THREADS)
        return dataclasses.replace(options, threads=threads,
                                   jobs=options.jobs or max(1, cores // threads))

    def __new__(cls, spec: TrialSpec) -> Executor:
        return InThisProcess(spec) if spec.options.jobs == 1 else Processes(spec)


class Processes:
    """Trials as ``wordnet-pipeline run`` processes, each with ``threads`` threads (its
    BLAS's too), its output in its folder's trial.log, its MLflow run nested under the
    sweep's by ID."""

    def __init__(self, spec: TrialSpec):
        self.spec, self.slots, self.threads = spec, spec.options.jobs, spec.options.threads
        self.env = os.environ | thread_env(self.threads)
        self.running, self.lock = set(), threading.Lock()

    def describe(self) -> str:
        return f"{self.slots} at a time, {self.threads} thread(s) each"

    def __call__(self, trial: Trial) -> dict:
        spec = self.spec
        folder, label = spec.out / trial.folder, spec.label(trial.values)
        folder.mkdir(parents=True, exist_ok=True)
        command = run_command(spec.source, trial.values, spec.stages, folder, spec.data_dir,
                              label, spec.where, spec.parent_run_id)

        def started(process):
            with self.lock:
                self.running.add(process)

        status = run_process(command, folder / TRIAL_LOG, self.env,
                             partial(spec.search.report, trial.number), started)
        with self.lock:
            self.running = {p for p in self.running if p.poll() is None}
        return finished_trial(trial, label, status, RunDir(folder),
                              (folder / TRIAL_LOG).read_text(errors="replace"), spec.echo)

    def stop(self):
        with self.lock:
            for process in self.running:
                if process.poll() is None:
                    process.terminate()              # SIGTERM: each ends its run KILLED

    def close(self):
        pass
