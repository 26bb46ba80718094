"""Training the window scorer and skip-gram with the 4-gram Trainer's semantics.

Minibatches of N examples (windows, or centre-context pairs) in file order, no
shuffling, the trailing ones that do not fill a batch unused; momentum SGD with
an optional weight decay (:class:`wordnet.models.base.Momentum`); the reported training
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

from wordnet._sampling import cdf_draw, cumulative
from wordnet.data.corpus import Corpus
from wordnet.errors import ConfigError
from wordnet.models import registry
from wordnet.models.base import Momentum
from wordnet.models.config import TrainingConfig
from wordnet.training.trainer import History, Iteration, report


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
        if cfg.early_stop > M:
            raise ConfigError(f"early_stop {cfg.early_stop} is beyond the {M} minibatches "
                              f"of an epoch (at most {M}: the whole last epoch)")
        history, step = History(), 0
        start = time.perf_counter()
        with self.model.single_threaded_blas():
            for epoch in range(cfg.epochs):
                last_epoch = epoch == cfg.epochs - 1
                stop = cfg.early_stop if last_epoch else M
                ce = 0.0
                for b in range(min(stop + 1, M)):
                    if self._stop_requested:
                        break
                    loss = self.batch_loss(train[b * N:(b + 1) * N]) / N
                    ce += (loss - ce) / (b + 1)
                    step += 1
                    report(history, Iteration(step, epoch + 1, b + 1, M, ce, loss),
                           on_iteration, cfg.learning_rate)
                    if b == stop:                  # the early-stop minibatch: not applied
                        break
                    self.optimizer.step(self.grads)
                    history.updates += 1
                    if valid is not None and b > 0 and b % cfg.validation_period == 0:
                        value = validation_loss(self.model, valid)
                        history.valid_ce.append((step, value))
                        if on_validation is not None:
                            on_validation(step, value)
                if self._stop_requested:
                    history.stopped = True
                    break
        history.finished = not history.stopped
        history.seconds = time.perf_counter() - start
        return history
