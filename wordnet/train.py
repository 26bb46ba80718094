"""Training and evaluation with the C reference's semantics (SPEC section 3).

Minibatches of N rows in file order, no shuffling; the trailing rows that do
not fill a batch are unused.  At every minibatch b of an epoch the reported
training CE is a running mean, reset at each epoch start:
``ce += (batch_ce - ce) / (b + 1)``.  In the last epoch, minibatch
``early_stop`` is forward-propagated and reported, then training stops
before its update.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ._activations import cross_entropy
from .model import Buffers, Config, ConfigError, Model, Momentum


@dataclass(frozen=True)
class Iteration:
    """One reported training CE; ``step`` counts them from 1 over the whole run."""
    step: int
    epoch: int        # 1-based
    batch: int        # 1-based within the epoch
    batches: int      # minibatches per epoch
    train_ce: float   # running mean over this epoch so far


@dataclass
class History:
    train_ce: list[float] = field(default_factory=list)
    valid_ce: list[tuple[int, float]] = field(default_factory=list)   # (step, CE)
    updates: int = 0
    seconds: float = 0.0

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Metrics:
    ce: float
    perplexity: float
    top1: float
    top5: float
    examples: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(getattr(self, k)) for k in ("ce", "perplexity", "top1", "top5")}


def batches(rows: np.ndarray, N: int):
    """Contexts (M, N, D) and targets (M, N) of the M = floor(rows / N) full batches."""
    M = len(rows) // N
    x = np.ascontiguousarray(rows[: M * N, :-1], dtype=np.int32).reshape(M, N, -1)
    t = np.ascontiguousarray(rows[: M * N, -1], dtype=np.int32).reshape(M, N)
    return x, t


class Trainer:
    """Runs the recipe of ``config`` on ``model``; velocities start at zero."""

    def __init__(self, model: Model, config: Config):
        self.model, self.config = model, config
        self.optimizer = Momentum(model, config.learning_rate, config.momentum, config.batch_size)
        self.buffers = Buffers(model, config.batch_size)
        self.grads = {name: np.empty_like(p) for name, p in model.params().items()}
        self.part = np.empty_like(model.W1)

    def run(self, train_rows: np.ndarray, valid_rows: np.ndarray | None = None,
            on_iteration=None, on_validation=None) -> History:
        cfg = self.config
        x, t = batches(train_rows, cfg.batch_size)
        M = len(x)
        if M == 0:
            raise ConfigError(f"{len(train_rows)} training rows do not fill one "
                              f"minibatch of {cfg.batch_size}")
        if cfg.early_stop > M:
            raise ConfigError(f"early_stop {cfg.early_stop} is beyond the {M} minibatches "
                              f"of an epoch (at most {M}: the whole last epoch)")
        with self.model.single_threaded_blas():
            return self._run(x, t, valid_rows, on_iteration, on_validation)

    def _run(self, x, t, valid_rows, on_iteration, on_validation) -> History:
        cfg, model, buf = self.config, self.model, self.buffers
        M = len(x)
        history, step = History(), 0
        start = time.perf_counter()
        for epoch in range(cfg.epochs):
            ce = 0.0
            for b in range(M):
                batch_ce = model.loss(x[b], t[b], buf)
                ce += (batch_ce - ce) / (b + 1)
                step += 1
                history.train_ce.append(ce)
                if on_iteration is not None:
                    on_iteration(Iteration(step, epoch + 1, b + 1, M, ce))
                if epoch == cfg.epochs - 1 and b == cfg.early_stop:
                    history.seconds = time.perf_counter() - start
                    return history
                model.backward(x[b], t[b], buf, self.grads, self.part)
                self.optimizer.step(self.grads)
                history.updates += 1
                if b > 0 and b % cfg.validation_period == 0 and valid_rows is not None:
                    valid_ce = evaluate(model, valid_rows, cfg.batch_size, accuracy=False).ce
                    history.valid_ce.append((step, valid_ce))
                    if on_validation is not None:
                        on_validation(step, valid_ce)
        history.seconds = time.perf_counter() - start
        return history


def evaluate(model: Model, rows: np.ndarray, batch_size: int = 100,
             accuracy: bool = True) -> Metrics:
    """CE (the running mean over full batches, as the C reports it), perplexity,
    top-1 and top-5 accuracy over the rows of those batches."""
    x, t = batches(rows, batch_size)
    if len(x) == 0:
        raise ValueError(f"{len(rows)} rows do not fill one batch of {batch_size}")
    buf = Buffers(model, batch_size)
    ce, hits1, hits5 = 0.0, 0, 0
    for b in range(len(x)):
        y3 = model.forward(x[b], buf)
        ce += (cross_entropy(y3, t[b]) - ce) / (b + 1)
        if accuracy:
            top5 = np.argsort(-y3, axis=0, kind="stable")[:5]
            hits = top5 == t[b]
            hits1 += int(hits[0].sum())
            hits5 += int(hits.sum())
    n = len(x) * batch_size
    return Metrics(ce, math.exp(ce), hits1 / n if accuracy else math.nan,
                   hits5 / n if accuracy else math.nan, n)

