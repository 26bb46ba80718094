"""Where a sweep's trials run: the interface every executor implements (:class:`Executor`),
what it is given (:class:`TrialSpec`), and the executors by name (:data:`EXECUTORS`).

``--executor local`` runs the trials in this process with ``--jobs 1``
(:mod:`wordnet.sweeps.in_process`), else as processes (:mod:`wordnet.sweeps.processes`);
``--executor ray`` as Ray tasks (:mod:`wordnet.sweeps.ray_executor`).  The sweep
(:mod:`wordnet.sweeps.sweep`) hands out the trials and names no executor.

This module imports nothing heavy: the command line reads it to build its options.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wordnet.errors import ConfigError

if TYPE_CHECKING:
    from wordnet.runs.recipes import Recipe
    from wordnet.sweeps.search import Search, Trial

# The executors, by their --executor name: "module:attribute", imported when chosen.
EXECUTORS = {
    "local": "wordnet.sweeps.processes:Local",
    "ray": "wordnet.sweeps.ray_executor:OnRay",
}


@dataclass(frozen=True)
class Options:
    """How the trials should run, as the command line says it.  An executor's
    ``configure`` checks them and fills in what was left out (``jobs``, ``threads``)."""
    executor: str = "local"
    jobs: int | None = None             # trials at once on this machine
    threads: int | None = None          # each trial's
    ray_address: str | None = None      # a Ray cluster's head
    tracking_uri: str | None = None     # the sweep's store, as given (None: the default)
    tracked: bool = True                # False: --no-tracking


@dataclass(frozen=True)
class TrialSpec:
    """What an executor needs to run any trial of a sweep."""
    recipe: Recipe
    source: str                         # the recipe's name or file: a process reads it again
    stages: tuple[str, ...]
    out: Path                           # the sweep's folder; each trial's is below it
    data_dir: Path | None
    where: tuple[str, str] | None       # tracking store (URI, experiment); None: untracked
    parent_run_id: str | None           # the sweep's MLflow run
    search: Search                      # the judge of validation points (its pruner)
    label: Callable[[dict], str]        # a trial's run name, from its values
    options: Options                    # configured: jobs and threads set
    echo: Callable[[str], Any] = print
    progress: Any = None                # a progress bar, for trials run in this process
    dataset: Any = None                 # the data, loaded once, for trials run here


class Executor(Protocol):
    """Runs a sweep's trials: ``slots`` at once, each ``executor(trial)`` in a thread of
    its own (the main thread when ``slots`` is 1), returning the trial's row of the
    summary (:func:`wordnet.sweeps.trials.trial_row`); ``stop()`` on Ctrl-C ends the
    running ones (their runs KILLED), ``close()`` after the last.

    To add one: a module with a class taking a :class:`TrialSpec` and having these
    members, plus a classmethod ``configure(options) -> Options`` that refuses options
    it cannot use (a one-line :class:`ConfigError`) and fills in its defaults; then its
    line in :data:`EXECUTORS`, which makes it an ``--executor`` choice.
    """
    slots: int

    def describe(self) -> str:
        """Where and how many at once, for the sweep's first line."""

    def __call__(self, trial: Trial) -> dict:
        """Run ``trial`` to its end; its row (status FINISHED, PRUNED, FAILED or KILLED)."""

    def stop(self) -> None:
        """Ctrl-C: stop the running trials (called from another thread)."""

    def close(self) -> None:
        """The sweep is over: release what the executor holds."""


def executor_class(name: str):
    """The executor registered as ``name`` (its class, or a factory with the same
    ``configure``)."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name}: not one of {', '.join(EXECUTORS)}")
    module, _, attribute = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def configure(options: Options) -> Options:
    """``options`` checked and completed by their executor; ConfigError when they do not
    go together."""
    return executor_class(options.executor).configure(options)


def start(spec: TrialSpec) -> Executor:
    """The executor of ``spec`` (its options configured), ready for trials."""
    return executor_class(spec.options.executor)(spec)
