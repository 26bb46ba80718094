"""A classical baseline beside the 4-gram network: interpolated Kneser–Ney, orders 1–4.

Estimated from the training 4-grams alone (each row w1 w2 w3 w), as Chen and Goodman
define it (1998, "interpolated Kneser-Ney", one discount per order):

    P4(w | w1 w2 w3) = max(c(w1 w2 w3 w) - D4, 0) / c(w1 w2 w3 •)
                       + D4 · N1+(w1 w2 w3 •) / c(w1 w2 w3 •) · P3(w | w2 w3)

and the lower orders the same with continuation counts in place of counts: the
count of a k-gram is the number of distinct words seen before it in a (k+1)-gram of
the level above (the k-grams of a level are the last k words of the level above's).
P1(w) interpolates with the uniform 1/V, so every word has a probability.  A context
never seen leaves its order to the next: P4(w | h) = P3(w | h'), and so on.  The
discount of order k is D = n1 / (n1 + 2 n2), n1 and n2 the k-grams counted once and
twice at that level (1/2 when none is counted once: every word keeps a probability).

The n-grams are numbers (base V), so counting is numpy's ``unique`` and looking up
is ``searchsorted``: a few seconds for millions of training 4-grams.
"""
from __future__ import annotations

import math

import numpy as np

ORDER = 4


def _keys(columns: np.ndarray, V: int) -> np.ndarray:
    """Each row of word indices as one number, base V (V**4 must fit in int64)."""
    key = np.zeros(len(columns), dtype=np.int64)
    for j in range(columns.shape[1]):
        key = key * V + columns[:, j]
    return key


class Level:
    """The k-grams of one order: their keys (sorted), counts, and per context (the
    first k-1 words) the counts' sum and how many distinct words follow it."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, V: int):
        self.keys, self.counts = keys, counts.astype(np.float64)
        n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
        # without k-grams seen once, the formula gives no mass to unseen words: 1/2 then
        self.discount = n1 / (n1 + 2 * n2) if n1 else 0.5
        contexts = self.keys // V                      # sorted with the keys
        self.contexts, first = np.unique(contexts, return_index=True)
        self.totals = np.add.reduceat(self.counts, first)
        self.types = np.diff(np.append(first, len(self.keys))).astype(np.float64)

    def lookup(self, keys: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
        """values[i] where table[i] == key, 0 where the key is not in the table."""
        at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        found = table[at] == keys if len(table) else np.zeros(len(keys), bool)
        return np.where(found, values[at] if len(table) else 0.0, 0.0)


class KneserNey:
    """Interpolated Kneser–Ney over V words, from the training 4-grams ``rows``
    ((n, 4), 0-based: w1 w2 w3 target)."""

    def __init__(self, rows: np.ndarray, V: int):
        if V ** ORDER >= 2 ** 63:
            raise ValueError(f"a vocabulary of {V:,} words is too large for 4-gram keys")
        self.V = V
        keys, counts = np.unique(_keys(np.asarray(rows, dtype=np.int64), V), return_counts=True)
        self.levels = {ORDER: Level(keys, counts, V)}
        for k in range(ORDER - 1, 0, -1):
            # the k-grams: the last k words of the level above's distinct grams; the
            # continuation count of one: how many distinct words came before it there
            keys, counts = np.unique(keys % V ** k, return_counts=True)
            self.levels[k] = Level(keys, counts, V)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(w | w1 w2 w3) of each row (w1 w2 w3 w)."""
        rows = np.asarray(rows, dtype=np.int64)
        V = self.V
        unigram = self.levels[1]
        c = unigram.lookup(rows[:, -1], unigram.keys, unigram.counts)
        total = unigram.counts.sum()
        p = (np.maximum(c - unigram.discount, 0.0)
             + unigram.discount * len(unigram.keys) / V) / total
        for k in range(2, ORDER + 1):
            level = self.levels[k]
            grams = rows[:, ORDER - k:]
            c = level.lookup(_keys(grams, V), level.keys, level.counts)
            context = _keys(grams[:, :-1], V)
            total = level.lookup(context, level.contexts, level.totals)
            types = level.lookup(context, level.contexts, level.types)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mixed = (np.maximum(c - level.discount, 0.0) + level.discount * types * p) / safe
            p = np.where(seen, mixed, p)
        return p

    def cross_entropy(self, rows: np.ndarray) -> float:
        """The mean of -ln P(w | w1 w2 w3) over the rows."""
        return float(-np.log(self.probabilities(rows)).mean())


def baseline(train: np.ndarray, test: np.ndarray, V: int) -> dict[str, float]:
    """The figures logged beside a 4-gram run: the test CE and perplexity of
    interpolated Kneser–Ney estimated from the training 4-grams."""
    ce = KneserNey(train, V).cross_entropy(test)
    return {"test_ce": ce, "test_perplexity": math.exp(ce)}
