"""The examples of the window scorer and of skip-gram, from ``raw_sentences.txt``.

The sentences (lines) are split in file order: the first 80 % for training, the
next 10 % for validation, the last 10 % for testing, as the 4-gram split divides
its 4-grams.  Each line is read as the 4-gram data is (:func:`wordnet.data.dataset.tokenize`:
lower-cased, split on white space, a word outside the vocabulary cuts its sentence),
and no example crosses a sentence's end.

    windows     the 2k+1 words around each word with k words on either side (N x (2k+1))
    pairs       (centre, context) for each word and each word at most k places from it
                in its sentence, in order of the centre's place, then of the offset
                -k..-1, 1..k (N x 2)

Neither is shuffled: minibatches come in file order, as the 4-gram model's do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wordnet.data import embedded
from wordnet.data.dataset import BREAK, SPLITS, DataError, Vocabulary, _read_text, tokenize

SHARES = (0.8, 0.1)          # of the lines: training, validation (the rest: test)


@dataclass(frozen=True)
class Corpus:
    """The three splits' token streams (0-based word indices, BREAK at each sentence's
    end and at each word outside the vocabulary) over ``vocab``."""
    vocab: Vocabulary
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def unigram(self, power: float = 1.0) -> np.ndarray:
        """P(word) in the training split, its count raised to ``power``, normalised."""
        counts = np.bincount(self.train[self.train != BREAK], minlength=len(self.vocab))
        weights = counts.astype(np.float64) ** power
        return weights / weights.sum()


def load_corpus(vocab: Vocabulary, data_dir: Path | None) -> Corpus:
    """``raw_sentences.txt`` of ``data_dir`` (None: the copy shipped with the package),
    split and read over ``vocab``; or the token streams of a folder ``data build`` made."""
    from wordnet.data import folder
    if data_dir is not None and folder.is_built(data_dir):
        return Corpus(vocab, *(folder.tokens(data_dir, s, len(vocab)) for s in SPLITS))
    if data_dir is None:
        text = embedded.read_bytes("raw_sentences.txt").decode("utf-8")
    else:
        path = Path(data_dir) / "raw_sentences.txt"
        if not path.exists():            # a folder or a FIFO there: _read_text refuses it
            raise DataError(f"{data_dir}: no raw_sentences.txt, which the window and skip-gram "
                            "models read; `wordnet-pipeline data fetch` fetches it")
        text = _read_text(path)
    lines = text.splitlines()
    a = int(SHARES[0] * len(lines))
    b = a + int(SHARES[1] * len(lines))
    parts = [tokenize("\n".join(part), vocab)[0] for part in (lines[:a], lines[a:b], lines[b:])]
    for name, tokens in zip(SPLITS, parts):
        if not (tokens != BREAK).any():
            raise DataError(f"raw_sentences.txt: the {name} split has no words")
    return Corpus(vocab, *parts)


def windows(tokens: np.ndarray, k: int) -> np.ndarray:
    """Every run of 2k+1 words inside a sentence, (N x (2k+1)) int32; the centre
    word is column k."""
    view = np.lib.stride_tricks.sliding_window_view(tokens, 2 * k + 1)
    return np.ascontiguousarray(view[(view != BREAK).all(axis=1)], dtype=np.int32)


def pairs(tokens: np.ndarray, k: int) -> np.ndarray:
    """(centre, context) of each word and each other word at most k places away in the
    same sentence, (N x 2) int32, in order of the centre's place, then of the offset."""
    n = len(tokens)
    # A pair is inside one sentence when no BREAK lies between its two places; the
    # count of BREAKs before each place tells.
    breaks = np.concatenate([[0], np.cumsum(tokens == BREAK)])
    places, found = np.arange(n), []
    offsets = [j for j in range(-k, k + 1) if j != 0]
    for rank, j in enumerate(offsets):
        c = places[max(0, -j):n - max(0, j)]
        o = c + j
        lo, hi = np.minimum(c, o), np.maximum(c, o)
        inside = (breaks[hi + 1] - breaks[lo]) == 0
        found.append(np.stack([c[inside], o[inside], np.full(inside.sum(), rank)], axis=1))
    every = np.concatenate(found)
    every = every[np.lexsort((every[:, 2], every[:, 0]))]        # by centre, then offset
    return np.ascontiguousarray(np.stack([tokens[every[:, 0]], tokens[every[:, 1]]], axis=1),
                                dtype=np.int32)
