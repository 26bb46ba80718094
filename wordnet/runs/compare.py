"""Comparing what models' embeddings learned: for every pair of models, how many of
each word's nearest neighbours they share, and their maps two to a row.

A word's neighbours are the ``k`` words whose embeddings (columns of W1) are
nearest in Euclidean distance, as ``wordnet-pipeline nearest`` finds them.  The
overlap of two models at a word is the share of those ``k`` they have in common
(1: the same neighbours, 0: none); a pair's figure is its mean over the words.
Two embeddings can differ by any rotation and still agree on every neighbour:
the overlap measures what matters, the neighbourhoods.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from wordnet.errors import WordNetError

K = 10                  # neighbours per word
SHOWN_WORDS = 5         # the words a pair agrees on most and least, in the table


class CompareError(WordNetError, ValueError):
    """The models cannot be compared (one model, or different vocabularies)."""


@dataclass(frozen=True)
class Embeddings:
    name: str
    W1: np.ndarray      # h1 x V, a column per word
    words: tuple[str, ...]


def neighbours(W1: np.ndarray, k: int = K) -> np.ndarray:
    """(V x k): each word's k nearest other words, nearest first, ties in word order."""
    E = np.asarray(W1, np.float64).T
    squared = (E * E).sum(axis=1)
    d2 = squared[:, None] + squared[None, :] - 2 * E @ E.T
    np.fill_diagonal(d2, np.inf)                  # not its own neighbour
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(V,): the share of each word's neighbours in ``a`` that are also in ``b``."""
    k = a.shape[1]
    return np.array([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())])


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    per_word: np.ndarray            # the overlap at each word

    @property
    def mean(self) -> float:
        return float(self.per_word.mean())


def compare(models: list[Embeddings], k: int = K) -> list[Pair]:
    """The overlap of every pair of ``models``' k nearest neighbours, pair by pair."""
    if len(models) < 2:
        raise CompareError("give two models or more to compare")
    first = models[0]
    for m in models[1:]:
        if m.words != first.words:
            raise CompareError(f"{m.name} and {first.name} have different vocabularies: "
                               "their neighbours cannot be compared")
    if not 1 <= k < len(first.words):
        raise CompareError(f"k must be 1 to {len(first.words) - 1}, got {k}")
    near = [neighbours(m.W1, k) for m in models]
    return [Pair(models[i].name, models[j].name, overlap(near[i], near[j]))
            for i, j in combinations(range(len(models)), 2)]


def table(pairs: list[Pair], words, k: int = K) -> str:
    """The pairs as a Markdown table: mean overlap, and the words agreed on most and least."""
    lines = [f"| model | model | mean overlap of the {k} nearest | agree most | agree least |",
             "|---|---|---|---|---|"]
    for p in pairs:
        order = np.argsort(-p.per_word, kind="stable")
        most = ", ".join(words[i] for i in order[:SHOWN_WORDS])
        least = ", ".join(words[i] for i in order[::-1][:SHOWN_WORDS])
        lines.append(f"| {p.first} | {p.second} | {p.mean:.3f} | {most} | {least} |")
    return "\n".join(lines) + "\n"
