"""The rows of bench.py's table: a measure(seconds) -> rate for each implementation."""
from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
from machine import blas_threads
from rates import run_for

from wordnet.models.fourgram import FourGramConfig, Model
from wordnet.training.trainer import Trainer


def cycle_batches(step_on_batch, batch_count: int):
    """A no-argument step that feeds the minibatches 0, 1, ..., M-1, 0, ... in turn."""
    b = 0

    def step():
        nonlocal b
        step_on_batch(b)
        b = b + 1 if b + 1 < batch_count else 0
    return step


@dataclasses.dataclass
class Bench:
    key: str
    label: str
    measure: object                       # seconds -> updates (or GEMM steps) per second
    group: str = "peer"
    rates: list = dataclasses.field(default_factory=list)
    foreign: list = dataclasses.field(default_factory=list)   # other processes' CPU, per repeat
    retries: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else math.nan

    @property
    def best(self) -> float:
        return max(self.rates) if self.rates else math.nan


def stepping(step, threads: int | None):
    """measure(seconds) for a step function, under a BLAS thread count."""
    def measure(seconds: float) -> float:
        with blas_threads(threads):
            return run_for(step, seconds)
    return measure


class TrainerTiming:
    """measure(seconds) through the public API: Trainer(model, config).run(train_rows).

    A run of U updates is FourGramConfig(epochs=U // M + 1, early_stop=U % M); U is
    chosen from the last measured rate so that the run lasts about
    ``seconds``.  The rate is the Trainer's own History.updates / .seconds.
    """

    def __init__(self, model: Model, config: FourGramConfig, train_rows: np.ndarray,
                 threads: int | None):
        self.model, self.config, self.train, self.threads = model, config, train_rows, threads
        self.batch_count = len(train_rows) // config.batch_size
        self.rate = None

    def run(self, updates: int):
        cfg = dataclasses.replace(self.config, epochs=updates // self.batch_count + 1,
                                  early_stop=updates % self.batch_count)
        with blas_threads(self.threads):
            history = Trainer(self.model, cfg).run(self.train)
        assert history.updates == updates, (history.updates, updates)
        return history

    def __call__(self, seconds: float) -> float:
        if self.rate is None:
            self.rate = self.run(10).updates_per_second
        history = self.run(max(1, round(self.rate * seconds)))
        self.rate = history.updates_per_second
        return self.rate
