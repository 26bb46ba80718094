"""The tables the kernels of pyx/sampling.pyx draw random words with, built once per
run from a distribution p over the vocabulary: the cumulative table (numpy's own,
for the same words as ``Generator.choice(p=...)``) and Vose's alias table (for
word2vec's per-pair SGD, pyx/sgd.pyx)."""
from __future__ import annotations

import numpy as np


def cumulative(p) -> np.ndarray:
    """The cumulative table of ``p`` as numpy's ``Generator.choice`` builds it:
    cumsum(p) divided by its last element."""
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    cdf /= cdf[-1]
    return cdf


def alias_table(p) -> tuple[np.ndarray, np.ndarray]:
    """(prob, alias) of Vose's alias method for the distribution ``p`` (normalised here):
    column i keeps i with probability prob[i], else gives alias[i]."""
    q = np.asarray(p, dtype=np.float64)
    if q.ndim != 1 or len(q) == 0 or not np.all(np.isfinite(q)) or (q < 0).any() or q.sum() <= 0:
        raise ValueError("alias_table: p must be finite, non-negative, not all zero")
    n = len(q)
    scaled = q * (n / q.sum())
    prob = np.ones(n)
    alias = np.arange(n, dtype=np.int32)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    for i in small + large:                           # rounding leftovers: keep themselves
        prob[i] = 1.0
    return prob, alias
