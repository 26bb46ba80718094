"""word2vec's skip-gram (the notes, 001): the centre word's vector predicts each word
around it.  Input vectors W1 (d x V, column c: word c's embedding, as the 4-gram
model's W1), output vectors W2 (V x d), no biases.

Full softmax, a batch of N (centre c, context o) pairs, one per column:

    y1 = W1[:, c]    z = W2 y1    y = softmax(z)    L = -Σ_i log y[o_i, i]
    dz = y - onehot(o)    dW2 = dz y1ᵀ    dy1 = W2ᵀ dz    dW1[:, c] += dy1

Negative sampling (``negatives`` = K > 0): each pair's o against K words drawn from
the unigram distribution to the ¾ power (pyx/objectives.pyx spells it out):

    L = -Σ_i [log σ(W2[o]·y1) + Σ_k log σ(-W2[n_k]·y1)]

Either way the model is evaluated by the held-out log-likelihood of the context
words under the full softmax: what a negative-sampling model's vectors say of
P(o | c) once normalised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wordnet._activations import bias_softmax, cross_entropy
from wordnet._gradients import embed, embed_grad, softmax_grad
from wordnet._objectives import negative_sampling
from wordnet._sgd import sgd_negative_sampling
from wordnet._softmax_step import blocks_of, softmax_step
from wordnet.data.corpus import pairs
from wordnet.errors import ConfigError
from wordnet.models import init as init_schemes
from wordnet.models.base import Layers
from wordnet.models.config import LINEAR_FLOOR, Config, check_window
from wordnet.models.kind import Figures, ModelKind

UNIGRAM_POWER = 0.75         # negative samples: unigram counts to this power (word2vec's)


@dataclass(frozen=True)
class SkipGramConfig(Config):
    """Skip-gram's recipe keys: the common ones, its window and its negative samples."""
    kind: ClassVar[str] = "skipgram"
    model: str = "skipgram"
    window: int = 2                        # k: context words either side of the centre
    negatives: int = 0                     # K negative samples; 0: the full softmax

    def __post_init__(self):
        super().__post_init__()
        check_window(self.window)
        if not 0 <= self.negatives <= 1000:
            raise ConfigError(f"negatives must be 0 (full softmax) to 1000, got {self.negatives}")
        if self.negatives and self.lr_schedule == "linear" and self.weight_decay:
            raise ConfigError("weight_decay with lr_schedule = linear and negatives: the "
                              "per-pair updates touch only a pair's rows, no decay")

    @property
    def experiment(self) -> str:
        # its training loss with negatives is another quantity than the softmax's CE
        return f"wordnet-{self.model}-neg" if self.negatives else f"wordnet-{self.model}"

    def objective(self) -> str:
        if self.negatives == 0:
            return "full softmax"
        return f"negative sampling, {self.negatives} negative{'s' if self.negatives > 1 else ''}"


class SkipGram(Layers):
    """Parameters W1 (d x V), the input vectors, and W2 (V x d), the output vectors."""
    PARAMS = ("W1", "W2")
    WEIGHTS = ("W1", "W2")
    kind = "skipgram"

    def __init__(self, params, backend="exact", threads=None, dtype="float64"):
        super().__init__(params, backend, threads, dtype)
        self.embedding_size, self.vocab_size = self.W1.shape
        if self.W2.shape != (self.vocab_size, self.embedding_size):
            raise ValueError("parameter shapes do not fit together")
        self._zero_bias = np.zeros(self.vocab_size, self.dtype)   # softmax without a bias
        self._part = np.empty_like(self.W1)                        # embed_grad's scratch

    @classmethod
    def saved_shapes(cls, found):
        """W1 (d x V), the input vectors, decides W2 (V x d), the output vectors."""
        h1, V = found["W1"]
        return {"W1": (h1, V), "W2": (V, h1)}

    @classmethod
    def initialize(cls, config, vocab_size: int, threads: int | None = None) -> "SkipGram":
        """A new model of ``config``'s sizes, its initial weights."""
        d = config.embedding_size
        shapes = {"W1": (d, vocab_size), "W2": (vocab_size, d)}
        return cls.restore(init_schemes.initial_weights(shapes, config.init, config.seed), config,
                           threads)

    @classmethod
    def restore(cls, params, config: SkipGramConfig, threads: int | None = None) -> "SkipGram":
        """The model of saved ``params``, computed as ``config`` says."""
        return cls(params, config.backend, threads, config.dtype)

    # -- training (wordnet.training.sampled) ------------------------------------------------

    @staticmethod
    def examples(tokens: np.ndarray, config: SkipGramConfig) -> np.ndarray:
        """A split's (centre, context) pairs, one a row."""
        return pairs(tokens, config.window)

    @staticmethod
    def noise(corpus, config: SkipGramConfig) -> np.ndarray:
        """The distribution negative samples are drawn from: unigrams to the ¾ power."""
        return corpus.unigram(UNIGRAM_POWER)

    def train_loss(self, batch: np.ndarray, draw, grads: dict, config: SkipGramConfig) -> float:
        """The batch's summed loss (full softmax, or against ``negatives`` words
        ``draw``n at random); its gradients into ``grads``."""
        samples = draw((len(batch), config.negatives)) if config.negatives else None
        return self.gradients(batch, grads, samples)

    def fused_step(self, batch: np.ndarray, optimizer, config: SkipGramConfig) -> float | None:
        """The full softmax's step on the fast backend in one kernel, W2 visited in
        blocks of rows that stay in cache (pyx/softmax_step.pyx): about twice as fast
        as gradients, then Momentum.step, from V = 250 to 50,000."""
        if config.negatives or self._exact:
            return None
        N, d, V, T = len(batch), self.embedding_size, self.vocab_size, self.workers
        velocity = optimizer.velocity
        centre, context = (np.ascontiguousarray(batch[:, k], np.int32) for k in (0, 1))
        return softmax_step(
            self.W1, self.W2, velocity["W1"], velocity["W2"], centre, context,
            self.buffer("y", (V, N)), self.buffer("y1", (d, N)), self.buffer("dy1", (T, d, N)),
            self.buffer("stats", (2, blocks_of(V), N)), np.empty(N), optimizer.learning_rate,
            optimizer.momentum, optimizer.inv_n, optimizer.weight_decay, T)

    def sgd_per_example(self, config: SkipGramConfig) -> bool:
        return config.negatives > 0

    def sgd(self, rows: np.ndarray, table, states: np.ndarray, done: int, total: int,
            config: SkipGramConfig) -> np.ndarray:
        """word2vec's per-pair SGD (pyx/sgd.pyx) over the whole minibatches of ``rows``,
        negatives drawn from the alias ``table`` with the random ``states`` (one per
        thread); the rate of config's linear schedule, ``done`` of the run's ``total``
        pairs before ``rows``.  Each minibatch's summed loss, each pair's before its step."""
        E = self.buffer("E", (self.vocab_size, self.embedding_size))
        E[...] = self.W1.T                                       # a word's vector as a row
        losses = np.empty(len(rows) // config.batch_size)
        sgd_negative_sampling(E, self.W2, rows, config.batch_size, config.negatives, *table,
                              states, config.learning_rate, LINEAR_FLOOR, done, total, losses,
                              self.workers, self._exact)
        self.W1[...] = E.T
        return losses

    def probabilities(self, centre: np.ndarray) -> np.ndarray:
        """y = softmax(W2 W1[:, c]) (V x N) for centre words ``centre`` (N); keeps y1."""
        N = len(centre)
        self.y1 = self.buffer("y1", (self.embedding_size, N))
        y = self.buffer("y", (self.vocab_size, N))
        embed(self.W1, centre.reshape(N, 1), self.y1)            # y1 = W1[:, c]
        self._gemm(self.W2, self.y1, y)                          # z = W2 y1
        bias_softmax(y, self._zero_bias, y, self.buffer("scratch", (N,)), self._exact,
                     self.workers)                               # y = softmax(z)
        return y

    def gradients(self, pairs: np.ndarray, grads: dict, samples: np.ndarray | None = None) -> float:
        """The loss summed over ``pairs`` (N x 2: centre, context), full softmax, or with
        ``samples`` (N x K) negative sampling; its gradients into ``grads``."""
        centre = np.ascontiguousarray(pairs[:, 0])
        if samples is not None:
            words = np.ascontiguousarray(np.column_stack([pairs[:, 1], samples]), dtype=np.int32)
            return negative_sampling(self.W1, self.W2, centre, words, grads["W1"], grads["W2"])
        context = np.ascontiguousarray(pairs[:, 1])
        y = self.probabilities(centre)
        loss = cross_entropy(y, context) * len(pairs)
        dz = self.buffer("dz", y.shape)
        softmax_grad(y, context, dz)                             # dz = y - onehot(o)
        self._gemm(dz, self.y1, grads["W2"], trans_b=True)       # dW2 = dz y1ᵀ
        dy1 = self.buffer("dy1", self.y1.shape)
        self._gemm(self.W2, dz, dy1, trans_a=True)               # dy1 = W2ᵀ dz
        embed_grad(dy1, centre.reshape(-1, 1), grads["W1"], self._part)  # dW1[:, c] += dy1
        return loss

    def evaluate(self, pairs: np.ndarray, chunk: int = 4096) -> dict[str, float]:
        """The mean log-likelihood of each context word given its centre word under the
        full softmax (``log_likelihood``), its negative (``ce``) and the perplexity."""
        total = 0.0
        for start in range(0, len(pairs), chunk):
            part = pairs[start:start + chunk]
            y = self.probabilities(np.ascontiguousarray(part[:, 0]))
            total += cross_entropy(y, np.ascontiguousarray(part[:, 1])) * len(part)
        ce = total / len(pairs)
        return {"log_likelihood": -ce, "ce": ce, "perplexity": float(np.exp(ce))}


KIND = ModelKind(
    name="skipgram", model=SkipGram, config=SkipGramConfig,
    figures=Figures("train/loss_running_mean", "valid/ce",
                    ("valid/final_ce", "test/log_likelihood", "train/final_loss",
                     "perf/updates_per_second")),
    checkpoint="model.npz", stages="wordnet.runs.sampled_stages:SampledStages",
    examples="centre-context pairs")
