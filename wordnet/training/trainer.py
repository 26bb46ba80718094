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
from dataclasses import dataclass, field, fields

import numpy as np

from wordnet._loop import evaluate_minibatches, train_minibatches
from wordnet._wide_loop import train_minibatches_wide
from wordnet.errors import ConfigError, WordNetError
from wordnet.models.base import Momentum
from wordnet.models.config import TrainingConfig
from wordnet.models.fourgram import Buffers, Model
from wordnet.training.threads import Governor

CHUNK = 64   # minibatches per call into the fused loop: callbacks and Ctrl-C wait at most this
# evaluate's batches above this size get one thread: two would hold two of them at once
BIG_BATCH = 8192
# From this many words the fast backend's loop shares W3's rows among the threads, in
# blocks (pyx/wide_loop.pyx), instead of the examples: 1.2-1.35x as fast on two threads
# at V = 2,000 to 50,000, level on one, slower at the course's 250 (0.82x)
WIDE_VOCABULARY = 2000


@dataclass(frozen=True)
class Iteration:
    """One reported training CE; ``step`` counts them from 1 over the whole run."""
    step: int
    epoch: int        # 1-based
    batch: int        # 1-based within the epoch
    batches: int      # minibatches per epoch
    train_ce: float   # running mean over this epoch so far
    batch_ce: float   # this minibatch's own CE


@dataclass
class History:
    train_ce: list[float] = field(default_factory=list)
    valid_ce: list[tuple[int, float]] = field(default_factory=list)   # (step, CE)
    updates: int = 0
    seconds: float = 0.0
    finished: bool = False     # the recipe ran to its end
    stopped: bool = False      # request_stop() ended it early

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
    predicted: np.ndarray | None = field(default=None, repr=False)  # each example's likeliest word

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(getattr(self, k)) for k in ("ce", "perplexity", "top1", "top5")}


def batches(rows: np.ndarray, N: int):
    """Contexts (M, N, D) and targets (M, N) of the M = floor(rows / N) full batches."""
    M = len(rows) // N
    x = np.ascontiguousarray(rows[: M * N, :-1], dtype=np.int32).reshape(M, N, rows.shape[1] - 1)
    t = np.ascontiguousarray(rows[: M * N, -1], dtype=np.int32).reshape(M, N)
    return x, t


def target_order(t: np.ndarray) -> np.ndarray:
    """Each batch's examples sorted by target, ties in example order: the order in
    which the C reference adds up the terms of a batch's CE."""
    return np.argsort(t, axis=1, kind="stable").astype(np.int32)


@dataclass(frozen=True)
class Position:
    """Where a run stands: the next minibatch of an epoch, and what came before it."""
    epoch: int = 0        # 0-based
    batch: int = 0        # 0-based index of the next minibatch
    step: int = 0         # training CEs reported so far
    ce: float = 0.0       # this epoch's running mean so far
    updates: int = 0

    @classmethod
    def restore(cls, saved, config: TrainingConfig, M: int) -> "Position":
        """The position ``saved`` (a dict) of a run of ``config`` with M minibatches an
        epoch; ValueError saying why when it is not one such a run can reach."""
        names = [f.name for f in fields(cls)]
        if not isinstance(saved, dict) or sorted(saved) != sorted(names):
            raise ValueError(f"the position must have exactly {', '.join(names)}")
        if any(isinstance(v, bool) or not isinstance(v, float if k == "ce" else int)
               for k, v in saved.items()):
            raise ValueError("the position holds a value of the wrong type")
        pos = cls(**saved)
        last = config.epochs - 1
        if not 0 <= pos.epoch <= last:
            raise ValueError(f"epoch {pos.epoch + 1} is not one of the recipe's {config.epochs}")
        end = min(config.early_stop, M) if pos.epoch == last else M
        if not 0 <= pos.batch <= end:
            raise ValueError(f"minibatch {pos.batch} is beyond the {end} of epoch {pos.epoch + 1}")
        if not pos.step == pos.updates == pos.epoch * M + pos.batch:
            raise ValueError(f"{pos.updates} updates and {pos.step} CEs do not match minibatch "
                             f"{pos.batch} of epoch {pos.epoch + 1}")
        if not math.isfinite(pos.ce):
            raise ValueError(f"the running CE is {pos.ce}")
        return pos


class Diverged(WordNetError, RuntimeError):
    """The training CE became NaN or infinite."""

    def __init__(self, iteration: Iteration, learning_rate: float):
        self.iteration = iteration
        super().__init__(
            f"training diverged at iteration {iteration.step} (epoch {iteration.epoch}, "
            f"minibatch {iteration.batch}): the CE is {iteration.train_ce}; "
            f"try a smaller learning_rate than {learning_rate}")


def report(history: History, it: Iteration, on_iteration, learning_rate: float) -> None:
    """A reported training loss ``it``: into the history, to ``on_iteration``; Diverged
    when it is no longer finite."""
    history.train_ce.append(it.train_ce)
    if on_iteration is not None:
        on_iteration(it)
    if not math.isfinite(it.train_ce):
        raise Diverged(it, learning_rate)


class Trainer:
    """Runs the recipe of ``config`` on ``model``.

    Velocities start at zero and the run at the first minibatch, unless a
    ``velocity`` and ``position`` saved from an interrupted run are given:
    then it continues exactly where that run stopped.
    """

    def __init__(self, model: Model, config: TrainingConfig, velocity=None,
                 position: Position = None):
        self.model, self.config = model, config
        self.optimizer = Momentum(model, config.learning_rate, config.momentum,
                                  config.batch_size, velocity, config.weight_decay)
        self.position = position or Position()
        self.buffers = Buffers(model, config.batch_size)
        self.grads = {name: np.empty_like(p) for name, p in model.params().items()}
        self.part = np.empty_like(model.W1)
        self.governor = Governor.of(model)
        self._stop_requested = False

    @property
    def velocity(self) -> dict[str, np.ndarray]:
        return self.optimizer.velocity

    def request_stop(self) -> None:
        """Stop before the next minibatch (safe to call from a signal handler)."""
        self._stop_requested = True

    def run(self, train_rows: np.ndarray, valid_rows: np.ndarray | None = None,
            on_iteration=None, on_validation=None, on_checkpoint=None) -> History:
        """Train until the recipe ends or request_stop(); ``self.position`` says where.
        ``on_checkpoint(history)`` is called between minibatches every
        ``checkpoint_minutes``, to save what resuming needs."""
        cfg = self.config
        x, t = batches(train_rows, cfg.batch_size)
        M = len(x)
        if M == 0:
            raise ConfigError(f"{len(train_rows)} training rows do not fill one "
                              f"minibatch of {cfg.batch_size}")
        try:
            with self.model.single_threaded_blas():
                return self._run(x, t, valid_rows, on_iteration, on_validation, on_checkpoint)
        finally:
            self.model.workers = None           # what the governor chose ends with the run

    def _run(self, x, t, valid_rows, on_iteration, on_validation, on_checkpoint) -> History:
        cfg, model, pos = self.config, self.model, self.position
        M = len(x)
        order = target_order(t)
        history = History()
        trace = np.empty(CHUNK)
        step, updates = pos.step, pos.updates
        total = cfg.updates(M * cfg.batch_size)
        # a linear rate changes at every minibatch: one minibatch a call
        chunk = CHUNK if cfg.lr_schedule == "constant" else 1
        step_loop = (train_minibatches_wide if model.backend == "fast"
                     and model.vocab_size >= WIDE_VOCABULARY else train_minibatches)
        start = time.perf_counter()
        saved = start
        for epoch in range(pos.epoch, cfg.epochs):
            resuming = epoch == pos.epoch
            ce = pos.ce if resuming else 0.0
            b = pos.batch if resuming else 0
            last_epoch = epoch == cfg.epochs - 1
            stop = min(cfg.early_stop, M) if last_epoch else M      # minibatches b < stop are applied
            while b < stop and not self._stop_requested:
                end = min(stop, b + self.governor.minibatches(chunk),
                          self._after_validation(b) if valid_rows is not None else M)
                before = ce
                model.workers = self.governor.workers
                tick = time.perf_counter()
                done, ce, diverged = step_loop(
                    model, self.velocity, self.grads, self.buffers, self.part, x, t, order,
                    b, end, ce, trace, cfg.rate(updates, total), cfg.momentum,
                    self.optimizer.inv_n, model.backend == "exact", model.workers,
                    model.activation == "tanh", cfg.weight_decay)
                self.governor.ran(done, time.perf_counter() - tick)
                for k in range(done):
                    step += 1
                    history.train_ce.append(float(trace[k]))
                    # The minibatch's CE, from the running mean's update (to within
                    # a few 1e-12: the difference of two means, times b + 1).
                    batch_ce = float(before + (b + k + 1) * (trace[k] - before))
                    before = float(trace[k])
                    it = Iteration(step, epoch + 1, b + k + 1, M, float(trace[k]), batch_ce)
                    if on_iteration is not None:
                        on_iteration(it)
                if diverged:
                    raise Diverged(it, cfg.learning_rate)
                updates += done
                history.updates += done
                b = end
                self.position = Position(epoch, b, step, ce, updates)
                if valid_rows is not None and self._validates_after(b - 1):
                    valid_ce = evaluate(model, valid_rows, cfg.batch_size, accuracy=False).ce
                    history.valid_ce.append((step, valid_ce))
                    if on_validation is not None:
                        on_validation(step, valid_ce)
                if (on_checkpoint is not None and not self._stop_requested
                        and time.perf_counter() - saved >= 60 * cfg.checkpoint_minutes):
                    on_checkpoint(history)
                    saved = time.perf_counter()
            if self._stop_requested:
                history.stopped = True
                break
            if last_epoch and stop < M:
                # The early-stop minibatch: its CE is reported, its update never made.
                batch_ce = model.loss(x[stop], t[stop], self.buffers)
                ce += (batch_ce - ce) / (stop + 1)
                step += 1
                report(history, Iteration(step, epoch + 1, stop + 1, M, ce, batch_ce),
                       on_iteration, cfg.learning_rate)
        history.finished = not history.stopped
        history.seconds = time.perf_counter() - start
        return history

    def _validates_after(self, b: int) -> bool:
        return b > 0 and b % self.config.validation_period == 0

    def _after_validation(self, b: int) -> int:
        """One past the first minibatch >= b after which validation runs."""
        period = self.config.validation_period
        return max(period, -(-b // period) * period) + 1


def evaluate(model: Model, rows: np.ndarray, batch_size: int = 100,
             accuracy: bool = True) -> Metrics:
    """CE (the running mean over full batches, as the C reports it), perplexity,
    top-1 and top-5 accuracy over the rows of those batches, and the likeliest
    next word of each of those rows.  A split smaller than one batch is taken as
    one batch of all its rows.

    The forward passes run in one call into the kernels, without the GIL
    (evaluate_minibatches): the model's threads take batches as they come and never
    wait for one another, and a thread of the caller's meanwhile runs Python freely.
    The top-k accuracies rank the target as a stable sort by falling probability
    would, ties included."""
    if len(rows) == 0:
        raise ValueError("no rows to evaluate")
    batch_size = min(batch_size, len(rows))
    x, t = batches(rows, batch_size)
    n = len(x) * batch_size
    # each thread its own columns, whole cache lines; one thread for huge batches, whose
    # activations alone are hundreds of MB
    threads = 1 if batch_size > BIG_BATCH else max(1, min(model.workers, len(x)))
    stride = -(-batch_size // 8) * 8
    rank = np.empty(n if accuracy else 0, dtype=np.int32)
    predicted = np.empty(n, dtype=np.intp) if accuracy else None
    with model.single_threaded_blas():
        buf = Buffers(model, threads * stride)
        ce = evaluate_minibatches(model, buf, buf.scratch, x, t, target_order(t), rank,
                                  predicted if accuracy else np.empty(0, np.intp), accuracy,
                                  model.backend == "exact", threads,
                                  model.activation == "tanh")
    return Metrics(ce, math.exp(ce), float(np.mean(rank == 0)) if accuracy else math.nan,
                   float(np.mean(rank < 5)) if accuracy else math.nan, n, predicted)
