"""The 4-gram network: configuration, parameters, forward and backward passes.

Shapes follow the C reference (SPEC section 1); a batch holds one example per
column, so ``y1`` is (D·h1) x N, ``y2`` is h2 x N and ``y3`` is V x N:

    y1  = [W1[:, x1]; W1[:, x2]; W1[:, x3]]
    y2  = sigmoid(W2 y1 + b2)                  (or tanh: activation = "tanh")
    y3  = softmax(W3 y2 + b3)                  L = -log y3[target]

    dz3 = y3 - onehot(target)    dW3 = dz3 y2ᵀ    db3 = Σ_i dz3
    dy2 = W3ᵀ dz3                dz2 = dy2 ∘ y2 ∘ (1 - y2)     (tanh: dy2 ∘ (1 - y2²))
    dW2 = dz2 y1ᵀ                db2 = Σ_i dz2    dy1 = W2ᵀ dz2
    dW1[:, v] = Σ over positions d and examples i with x[i, d] = v of dy1[d]

A weight decay λ (L2) adds (λ/2)(‖W1‖² + ‖W2‖² + ‖W3‖²) to the minibatch's mean
loss, not the biases, as in the window classifier of the notes (003): the update's
gradient of W is then dW / N + λ W (``Momentum``, pyx/updates.pyx).

Two backends compute the products: ``exact`` in the C reference's summation
order (bit-identical results, float64), ``fast`` through BLAS, in float64 or
float32.  ``forward`` serves evaluation and prediction; ``backward`` and
``Momentum.step`` spell the training step out, which the trainer runs fused,
with no Python between the kernels (pyx/loop.pyx): a test holds the two equal,
bit for bit with ``exact``; with ``fast`` the fused loop has BLAS add the
weight gradients to the velocity, the same update rounded otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wordnet._activations import bias_sigmoid, bias_softmax, bias_tanh, cross_entropy
from wordnet._gradients import (
    embed,
    embed_grad,
    sigmoid_grad,
    softmax_grad,
    sum_columns,
    tanh_grad,
)
from wordnet.models import init as init_schemes
from wordnet.models.base import Layers
from wordnet.models.config import ACTIVATIONS, Config, check_choice, check_hidden_layer
from wordnet.models.kind import Figures, ModelKind

WEIGHTS = ("W1", "W2", "W3")                  # what a weight decay shrinks
PARAMS = ("W1", "W2", "b2", "W3", "b3")       # checkpoint order
UPDATE_ORDER = ("W3", "b3", "W2", "b2", "W1")  # the C reference's update order


@dataclass(frozen=True)
class FourGramConfig(Config):
    """The 4-gram model's recipe keys: the common ones and its hidden layer's."""
    kind: ClassVar[str] = "4gram"
    hidden_size: int = 200                 # h2
    activation: str = "sigmoid"            # of the hidden layer: sigmoid or tanh

    def __post_init__(self):
        super().__post_init__()
        check_hidden_layer(self)


def training_memory(header) -> int:
    """Bytes a training run under checkpoint ``header`` holds at once, about: the
    parameters five times (the weights, their velocities, their gradients, and the two
    copies of a checkpoint being written) and a minibatch's activations twice
    (training's and evaluation's), in float64."""
    params = sum(math.prod(shape) for shape in header.shapes().values())
    D, h1, h2, V = header.context_size, header.embedding_size, header.hidden_size, header.vocab_size
    rows = 2 * D * h1 + 4 * h2 + 3 * V + 2                 # as Buffers allocates them
    return 8 * (5 * params + 2 * rows * header.batch_size)



def _cache_aligned(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An uninitialised (rows x cols) view whose rows start on 64-byte cache lines.

    Threads that split the columns at a line boundary then never write the
    same line (see pyx/loop.pyx).
    """
    per_line = 64 // np.dtype(dtype).itemsize
    rows, cols = shape
    ld = -(-cols // per_line) * per_line
    raw = np.empty(rows * ld + per_line, dtype=dtype)
    skip = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[skip:skip + rows * ld].reshape(rows, ld)[:, :cols]


class Buffers:
    """Activations and their gradients for a batch of N examples: (units x N), one
    example per column, each row padded to whole 64-byte cache lines."""

    def __init__(self, model: "Model", N: int):
        V, h1, h2, D = model.vocab_size, model.embedding_size, model.hidden_size, model.context_size
        self.N = N
        rows = {"y1": D * h1, "dy1": D * h1, "z2": h2, "y2": h2, "dy2": h2, "dz2": h2,
                "z3": V, "y3": V, "dz3": V}
        for name, r in rows.items():
            setattr(self, name, _cache_aligned((r, N), model.dtype))
        self.scratch = _cache_aligned((1, N), model.dtype)[0]
        self.logp = _cache_aligned((1, N), np.float64)[0]   # the CE's terms, summed in float64



class Model(Layers):
    """Parameters W1 (h1 x V), W2 (h2 x D·h1), b2, W3 (V x h2), b3, of one dtype."""
    PARAMS, WEIGHTS, UPDATE_ORDER = PARAMS, WEIGHTS, UPDATE_ORDER
    kind = "4gram"

    def __init__(self, params: dict[str, np.ndarray], backend: str = "exact",
                 threads: int | None = None, dtype: str = "float64",
                 activation: str = "sigmoid"):
        check_choice("activation", activation, ACTIVATIONS)
        super().__init__(params, backend, threads, dtype)
        self.activation = activation
        self._tanh = activation == "tanh"
        h1, V = self.W1.shape
        h2, Dh1 = self.W2.shape
        if Dh1 % h1 or self.W3.shape != (V, h2) or self.b2.shape != (h2,) or self.b3.shape != (V,):
            raise ValueError("parameter shapes do not fit together")
        self.vocab_size, self.embedding_size, self.hidden_size = V, h1, h2
        self.context_size = Dh1 // h1

    @classmethod
    def initialize(cls, config: FourGramConfig, vocab_size: int, context_size: int = 3,
                   threads: int | None = None) -> "Model":
        """A new model of ``config``'s sizes, its initial weights."""
        shapes = {"W1": (config.embedding_size, vocab_size),
                  "W2": (config.hidden_size, context_size * config.embedding_size),
                  "b2": (config.hidden_size,),
                  "W3": (vocab_size, config.hidden_size),
                  "b3": (vocab_size,)}
        return cls.restore(init_schemes.initial_weights(shapes, config.init, config.seed), config,
                           threads)

    @classmethod
    def restore(cls, params, config: FourGramConfig, threads: int | None = None) -> "Model":
        """The model of saved ``params``, computed as ``config`` says."""
        return cls(params, config.backend, threads, config.dtype, config.activation)

    def forward(self, x: np.ndarray, b: Buffers) -> np.ndarray:
        """y3 (V x N) for contexts x (N x D, int32, 0-based)."""
        embed(self.W1, x, b.y1)                          # y1 = [W1 x1; W1 x2; W1 x3]
        self._gemm(self.W2, b.y1, b.z2)                  # z2 = W2 y1
        if self._tanh:
            bias_tanh(b.z2, self.b2, b.y2, self._exact, self.workers)  # y2 = tanh(z2 + b2)
        else:
            bias_sigmoid(b.z2, self.b2, b.y2, self._exact, self.workers)  # sigmoid(z2 + b2)
        self._gemm(self.W3, b.y2, b.z3)                  # z3 = W3 y2
        bias_softmax(b.z3, self.b3, b.y3, b.scratch, self._exact,  # y3 = softmax(z3 + b3)
                     self.workers)
        return b.y3

    def backward(self, x: np.ndarray, t: np.ndarray, b: Buffers, g: dict[str, np.ndarray],
                 part: np.ndarray) -> None:
        """Batch-summed gradients into g, after forward(x, b). ``part``: h1 x V scratch."""
        softmax_grad(b.y3, t, b.dz3)                     # dz3 = y3 - onehot(t)
        self._gemm(b.dz3, b.y2, g["W3"], trans_b=True)   # dW3 = dz3 y2ᵀ
        sum_columns(b.dz3, g["b3"], self._exact, self.workers)  # db3 = Σ_i dz3
        self._gemm(self.W3, b.dz3, b.dy2, trans_a=True)  # dy2 = W3ᵀ dz3
        if self._tanh:
            tanh_grad(b.dy2, b.y2, b.dz2, self.workers)  # dz2 = dy2 ∘ (1 - y2²)
        else:
            sigmoid_grad(b.dy2, b.y2, b.dz2, self.workers)  # dz2 = dy2 ∘ y2 ∘ (1 - y2)
        self._gemm(b.dz2, b.y1, g["W2"], trans_b=True)   # dW2 = dz2 y1ᵀ
        sum_columns(b.dz2, g["b2"], self._exact, self.workers)  # db2 = Σ_i dz2
        self._gemm(self.W2, b.dz2, b.dy1, trans_a=True)  # dy1 = W2ᵀ dz2
        embed_grad(b.dy1, x, g["W1"], part, self._exact)  # dW1, position by position

    def loss(self, x: np.ndarray, t: np.ndarray, b: Buffers) -> float:
        """Mean cross-entropy of a batch, as the C reference reports it."""
        return cross_entropy(self.forward(x, b), t)

    def predict_proba(self, contexts, chunk: int = 1024) -> np.ndarray:
        """P(next word | context) as an (n, V) array, for (n, D) 0-based contexts."""
        # Chunks of 1,024 keep the activations in cache: 4,096 was 20-30 % slower.
        x = np.ascontiguousarray(np.atleast_2d(contexts), dtype=np.int32)
        if x.shape[1] != self.context_size:
            raise ValueError(f"a context has {self.context_size} words, got {x.shape[1]}")
        out = np.empty((len(x), self.vocab_size), dtype=self.dtype)
        full = Buffers(self, min(chunk, len(x)))
        with self.single_threaded_blas():
            for start in range(0, len(x), chunk):
                xs = x[start:start + chunk]
                b = full if len(xs) == full.N else Buffers(self, len(xs))
                out[start:start + len(xs)] = self.forward(xs, b).T
        return out




KIND = ModelKind(
    name="4gram", model=Model, config=FourGramConfig,
    figures=Figures("train/ce_running_mean", "valid/ce",
                    ("valid/final_ce", "test/ce", "valid/top1", "train/final_ce",
                     "perf/updates_per_second"), loss_name="CE",
                    batch_curve="train/batch_ce_mean10"),
    checkpoint="model.bin", stages="wordnet.runs.fourgram_stages:FourGramStages",
    predicts=True, resumes=True, examples="4-grams")
