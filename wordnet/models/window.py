"""The window scorer of the notes (004, the Collobert–Weston idea): a window of 2k+1
words gets an unnormalised score, trained to score the true window above the same
window with its centre word replaced by a random word.

A batch of N windows and their N corruptions is one batch of 2N columns (D = 2k+1):

    y1 = [W1[:, x_1]; ...; W1[:, x_D]]
    y2 = tanh(W2 y1 + b2)                 (or sigmoid: activation = "sigmoid")
    s  = W3 y2 + b3                       W3 is 1 x h2: one score per column
    L  = Σ_i max(0, 1 - s_i + s_{N+i})    column N+i: window i, centre corrupted

    ds_i = -1, ds_{N+i} = +1 where the margin 1 - s_i + s_{N+i} is positive, else 0
    dW3 = ds y2ᵀ    db3 = Σ ds    dy2 = W3ᵀ ds    dz2 = dy2 ∘ (1 - y2²)
    dW2 = dz2 y1ᵀ   db2 = Σ dz2   dy1 = W2ᵀ dz2   dW1: dy1 scattered to its words

the 4-gram model's layers but the last; the kernels are the same
(pyx/objectives.pyx has the hinge's gradient).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wordnet._activations import bias_sigmoid, bias_tanh
from wordnet._gradients import embed, embed_grad, sigmoid_grad, sum_columns, tanh_grad
from wordnet._objectives import hinge_grad
from wordnet.data.corpus import windows
from wordnet.models import init as init_schemes
from wordnet.models.base import Layers
from wordnet.models.config import Config, check_choice, check_hidden_layer, check_window
from wordnet.models.kind import Figures, ModelKind

EVAL_CORRUPTIONS = 5          # corrupted windows per test window in the ranking accuracy
EVAL_SEED = 0                 # their draw: the same for every model
CORRUPTIONS = ("uniform", "unigram")   # the distributions of a corrupted centre word


@dataclass(frozen=True)
class WindowConfig(Config):
    """The window scorer's recipe keys: the common ones, its hidden layer's, its window
    and the distribution of its corrupted centre words."""
    kind: ClassVar[str] = "window"
    model: str = "window"
    hidden_size: int = 200                 # h2
    activation: str = "sigmoid"            # of the hidden layer: sigmoid or tanh
    window: int = 2                        # k: words either side of the centre
    corruption: str = "uniform"            # of the corrupted centre: uniform or unigram

    def __post_init__(self):
        super().__post_init__()
        check_hidden_layer(self)
        check_window(self.window)
        check_choice("corruption", self.corruption, CORRUPTIONS)

    def objective(self) -> str:
        return f"hinge loss against {self.corruption} corrupted centre words, k = {self.window}"


class WindowScorer(Layers):
    """Parameters W1 (h1 x V), W2 (h2 x D·h1), b2, W3 (1 x h2), b3 (1)."""
    PARAMS = ("W1", "W2", "b2", "W3", "b3")
    WEIGHTS = ("W1", "W2", "W3")
    kind = "window"

    def __init__(self, params, backend="exact", threads=None, dtype="float64",
                 activation="tanh"):
        super().__init__(params, backend, threads, dtype)
        self._tanh = activation == "tanh"
        self.activation = activation
        h1, self.vocab_size = self.W1.shape
        self.hidden_size = self.W2.shape[0]
        self.window = self.W2.shape[1] // h1                     # D = 2k+1
        if self.W2.shape[1] % h1 or self.W3.shape != (1, self.hidden_size):
            raise ValueError("parameter shapes do not fit together")
        self._part = np.empty_like(self.W1)                     # embed_grad's scratch

    @classmethod
    def saved_shapes(cls, found):
        """W1 (h1 x V) and W2 (h2 x (2k+1)·h1) decide the others: b2 (h2), W3 (1 x h2), b3 (1)."""
        (h1, V), (h2, columns) = found["W1"], found["W2"]
        if columns % h1 or columns // h1 % 2 == 0:
            raise ValueError(f"W2 has {columns} columns: not an odd window of "
                             f"{h1}-wide embeddings")
        return {"W1": (h1, V), "W2": (h2, columns), "b2": (h2,), "W3": (1, h2), "b3": (1,)}

    @classmethod
    def initialize(cls, config, vocab_size: int, threads: int | None = None) -> "WindowScorer":
        """A new model of ``config``'s sizes, its initial weights."""
        h1, h2, D = config.embedding_size, config.hidden_size, 2 * config.window + 1
        shapes = {"W1": (h1, vocab_size), "W2": (h2, D * h1), "b2": (h2,), "W3": (1, h2),
                  "b3": (1,)}
        return cls.restore(init_schemes.initial_weights(shapes, config.init, config.seed), config,
                           threads)

    @classmethod
    def restore(cls, params, config: WindowConfig, threads: int | None = None) -> "WindowScorer":
        """The model of saved ``params``, computed as ``config`` says."""
        return cls(params, config.backend, threads, config.dtype, config.activation)

    # -- training (wordnet.training.sampled) ------------------------------------------------

    @staticmethod
    def examples(tokens: np.ndarray, config: WindowConfig) -> np.ndarray:
        """A split's windows of 2k+1 words, one a row."""
        return windows(tokens, config.window)

    @staticmethod
    def noise(corpus, config: WindowConfig) -> np.ndarray | None:
        """The distribution a corrupted centre word is drawn from (None: uniform)."""
        return None if config.corruption == "uniform" else corpus.unigram()

    def train_loss(self, batch: np.ndarray, draw, grads: dict, config: WindowConfig) -> float:
        """The batch's summed hinge loss against its windows with centres ``draw``n at
        random; its gradients into ``grads``."""
        return self.gradients(batch, corrupt(batch, draw(len(batch))), grads)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """s (M,) for windows x (M x D, int32, 0-based); keeps y1, y2 for backward."""
        M = len(x)
        self.y1 = self.buffer("y1", (self.window * self.W1.shape[0], M))
        self.y2 = self.buffer("y2", (self.hidden_size, M))
        z3 = self.buffer("s", (1, M))
        embed(self.W1, x, self.y1)                               # y1 = [W1 x_1; ...; W1 x_D]
        self._gemm(self.W2, self.y1, self.y2)                    # z2 = W2 y1 (in place)
        squash = bias_tanh if self._tanh else bias_sigmoid
        squash(self.y2, self.b2, self.y2, self._exact, self.workers)  # y2 = tanh(z2 + b2)
        self._gemm(self.W3, self.y2, z3)                         # s = W3 y2 + b3
        return z3[0] + self.b3[0]

    def gradients(self, x: np.ndarray, corrupted: np.ndarray, grads: dict) -> float:
        """The hinge loss summed over the windows ``x`` (N x D) against ``corrupted``
        (the same windows, centres replaced); its gradients into ``grads``."""
        both = _stacked(x, corrupted)
        s = self.scores(both)
        ds = self.buffer("ds", (1, len(s)))
        loss = hinge_grad(s, ds[0])                              # L, and dL/ds
        self._gemm(ds, self.y2, grads["W3"], trans_b=True)       # dW3 = ds y2ᵀ
        grads["b3"][0] = ds.sum()                                # db3 = Σ ds
        dz2 = self.buffer("dz2", self.y2.shape)
        self._gemm(self.W3, ds, dz2, trans_a=True)               # dy2 = W3ᵀ ds
        grad = tanh_grad if self._tanh else sigmoid_grad
        grad(dz2, self.y2, dz2, self.workers)                    # dz2 = dy2 ∘ (1 - y2²)
        self._gemm(dz2, self.y1, grads["W2"], trans_b=True)      # dW2 = dz2 y1ᵀ
        sum_columns(dz2, grads["b2"], self._exact, self.workers)  # db2 = Σ dz2
        dy1 = self.buffer("dy1", self.y1.shape)
        self._gemm(self.W2, dz2, dy1, trans_a=True)              # dy1 = W2ᵀ dz2
        embed_grad(dy1, both, grads["W1"], self._part)           # dW1, position by position
        return loss

    def loss(self, x: np.ndarray, corrupted: np.ndarray) -> float:
        """The mean hinge loss of windows ``x`` against ``corrupted``."""
        s = self.scores(_stacked(x, corrupted))
        return float(np.maximum(0.0, 1.0 - s[:len(x)] + s[len(x):]).mean())

    def evaluate(self, x: np.ndarray, chunk: int = 4096) -> dict[str, float]:
        """Against EVAL_CORRUPTIONS corruptions of each window, their centre drawn
        uniformly from the other words: the rate at which the true window scores
        higher (the ranking accuracy), the mean of s - s' (the mean margin) and the
        mean hinge loss."""
        rng = np.random.default_rng(EVAL_SEED)
        k = self.window // 2
        wins, total, margin, loss = 0, 0, 0.0, 0.0
        for start in range(0, len(x), chunk):
            xs = x[start:start + chunk]
            s = self.scores(xs)
            for _ in range(EVAL_CORRUPTIONS):
                # another word than the centre: 1..V-1 places further round the vocabulary
                shift = rng.integers(1, self.vocab_size, size=len(xs))
                gap = s - self.scores(corrupt(xs, (xs[:, k] + shift) % self.vocab_size))
                wins += int((gap > 0).sum())
                margin += float(gap.sum())
                loss += float(np.maximum(0.0, 1.0 - gap).sum())
                total += len(xs)
        return {"ranking_accuracy": wins / total, "mean_margin": margin / total,
                "loss": loss / total}


def _stacked(x: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """The windows, then their corruptions: the 2N columns of one batch."""
    return np.ascontiguousarray(np.concatenate([x, corrupted]), dtype=np.int32)


def corrupt(x: np.ndarray, words: np.ndarray) -> np.ndarray:
    """The windows ``x`` with their centre words replaced by ``words``."""
    out = x.copy()
    out[:, x.shape[1] // 2] = words
    return out


KIND = ModelKind(
    name="window", model=WindowScorer, config=WindowConfig,
    figures=Figures("train/loss_running_mean", "valid/loss",
                    ("valid/final_loss", "test/ranking_accuracy", "test/mean_margin",
                     "train/final_loss", "perf/updates_per_second"), "validation hinge loss"),
    checkpoint="model.npz", stages="wordnet.runs.sampled_stages:SampledStages",
    examples="windows")
