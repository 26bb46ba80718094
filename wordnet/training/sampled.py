"""Training the window scorer and skip-gram with the 4-gram Trainer's semantics.

Minibatches of N examples (windows, or centre-context pairs) in file order, no
shuffling, the trailing ones that do not fill a batch unused; momentum SGD with
an optional weight decay (:class:`wordnet.models.base.Momentum`), or with
``lr_schedule = "linear"`` word2vec's SGD: no momentum, the rate falling linearly
over the run, applied per example where the model has a kernel for it (skip-gram's
negative sampling: ``sgd``, pyx/sgd.pyx, sparse, in chunks of minibatches), per
minibatch otherwise; the reported training
loss a running mean reset at each epoch; in the last epoch, minibatch
``early_stop`` is evaluated and reported, not applied; a validation after the
minibatches b > 0 with b % validation_period == 0.  The random words (the window
scorer's corrupted centres, skip-gram's negative samples) come from one stream
seeded by the recipe's ``seed``.  Unlike the 4-gram model's, these runs do not
resume: the kernels are called from Python, minibatch by minibatch.
"""
from __future__ import annotations

import time

import numpy as np

from wordnet._sampling import cdf_draw
from wordnet.data.corpus import Corpus
from wordnet.errors import ConfigError
from wordnet.models import registry
from wordnet.models.base import Momentum
from wordnet.models.config import TrainingConfig
from wordnet.models.sampler import alias_table, cumulative
from wordnet.training.threads import Governor
from wordnet.training.trainer import History, Iteration, report

# Minibatches per call of the per-pair SGD kernel (pyx/sgd.pyx): 102,400 pairs, 30-100
# ms of the course's model.  A call ends at a barrier of its threads, where one the
# machine has descheduled keeps the other waiting for the rest of a time slice, and
# copies the embeddings into rows and back.  At the 4-gram loop's 64 minibatches (2-3
# ms a call), two fixed threads on a machine another process kept busy trained at 0.75
# of one thread's rate.
SGD_CHUNK = 1024


def examples(model, corpus: Corpus, split: str, config) -> np.ndarray:
    """A split's examples for ``model``, as its kind makes them of the split's sentences:
    the window scorer's windows of 2k+1 words, skip-gram's (centre, context) pairs."""
    return model.examples(corpus.split(split), config)


def validation_loss(model, rows: np.ndarray) -> float:
    """What validation reports, its kind's validation curve (the window scorer's hinge
    loss against fixed corruptions, skip-gram's full-softmax CE)."""
    curve = registry.kind(model.kind).figures.valid_curve
    return model.evaluate(rows)[curve.removeprefix("valid/")]


class SampledTrainer:
    """Runs the recipe of ``config`` on a WindowScorer or a SkipGram."""

    def __init__(self, model, config: TrainingConfig, corpus: Corpus):
        self.model, self.config = model, config
        self.optimizer = Momentum(model, config.learning_rate, config.momentum,
                                  config.batch_size, weight_decay=config.weight_decay)
        self.grads = {name: np.empty_like(p) for name, p in model.params().items()}
        self.rng = np.random.default_rng(config.seed)
        self.draw_p = model.noise(corpus, config)        # of its random words; None: uniform
        self.cdf = None if self.draw_p is None else cumulative(self.draw_p)
        # word2vec's per-example SGD, when the schedule asks for it and the model has it:
        # the alias table of its random words, a random state per thread
        self.table = self.states = None
        if config.lr_schedule == "linear" and model.sgd_per_example(config):
            self.table = alias_table(np.full(model.vocab_size, 1.0 / model.vocab_size)
                                     if self.draw_p is None else self.draw_p)
            self.states = np.random.SeedSequence(config.seed).generate_state(
                model.threads, np.uint64)
        self.governor = Governor.of(model)
        self._stop_requested = False

    def request_stop(self) -> None:
        """Stop before the next minibatch (safe to call from a signal handler)."""
        self._stop_requested = True

    def _draw(self, shape) -> np.ndarray:
        """Words from draw_p: the words ``rng.choice(V, shape, p=draw_p)`` gives (the same
        uniforms through the same cumulative table), without its checks of p each call."""
        if self.cdf is None:
            return self.rng.choice(self.model.vocab_size, size=shape).astype(np.int32)
        words = np.empty(shape, np.int32)
        cdf_draw(self.cdf, self.rng.random(shape).reshape(-1), words.reshape(-1))
        return words

    def batch_loss(self, batch: np.ndarray) -> float:
        """The batch's summed loss; its gradients into self.grads."""
        return self.model.train_loss(batch, self._draw, self.grads, self.config)

    def run(self, train: np.ndarray, valid: np.ndarray | None = None, on_iteration=None,
            on_validation=None) -> History:
        cfg = self.config
        N = cfg.batch_size
        M = len(train) // N
        if M == 0:
            raise ConfigError(f"{len(train)} training examples do not fill one minibatch of {N}")
        history = History()
        start = time.perf_counter()
        try:
            with self.model.single_threaded_blas():
                self._run(train, valid, history, on_iteration, on_validation)
        finally:
            self.model.workers = None           # what the governor chose ends with the run
        history.finished = not history.stopped
        history.seconds = time.perf_counter() - start
        return history

    def _run(self, train, valid, history, on_iteration, on_validation) -> None:
        cfg, model, governor = self.config, self.model, self.governor
        N = cfg.batch_size
        M = len(train) // N
        total = cfg.updates(len(train))                  # the run's updates
        step = 0
        for epoch in range(cfg.epochs):
            last_epoch = epoch == cfg.epochs - 1
            stop = min(cfg.early_stop, M) if last_epoch else M
            ce, b = 0.0, 0
            while b < min(stop + 1, M) and not self._stop_requested:
                model.workers = governor.workers
                tick = time.perf_counter()
                if self.table is not None and b < stop:
                    # word2vec's per-example SGD, minibatches b..end-1 in one call
                    end = min(stop, b + governor.minibatches(SGD_CHUNK),
                              after_validation(b, cfg.validation_period)
                              if valid is not None else M)
                    losses = model.sgd(train[b * N:end * N], self.table, self.states,
                                       history.updates * N, total * N, cfg)
                    history.updates += end - b
                else:
                    end, batch, stepped = b + 1, train[b * N:(b + 1) * N], None
                    if b < stop:                    # the loss and the step in one kernel?
                        self.optimizer.learning_rate = cfg.rate(history.updates, total)
                        stepped = model.fused_step(batch, self.optimizer, cfg)
                    losses = (self.batch_loss(batch) if stepped is None else stepped,)
                spent = time.perf_counter() - tick
                for k, summed in enumerate(losses):
                    loss = float(summed) / N
                    ce += (loss - ce) / (b + k + 1)
                    step += 1
                    report(history, Iteration(step, epoch + 1, b + k + 1, M, ce, loss),
                           on_iteration, cfg.learning_rate)
                if b == stop:                  # the early-stop minibatch: not applied
                    break
                if self.table is None:
                    tick = time.perf_counter()
                    if stepped is None:
                        self.optimizer.step(self.grads)
                    history.updates += 1
                    spent += time.perf_counter() - tick
                governor.ran(end - b, spent)
                b = end
                if valid is not None and b > 1 and (b - 1) % cfg.validation_period == 0:
                    value = validation_loss(model, valid)
                    history.valid_ce.append((step, value))
                    if on_validation is not None:
                        on_validation(step, value)
            if self._stop_requested:
                history.stopped = True
                break


def after_validation(b: int, period: int) -> int:
    """One past the first minibatch >= b after which validation runs."""
    return max(period, -(-b // period) * period) + 1
