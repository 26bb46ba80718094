"""A data folder made by ``wordnet-pipeline data build`` (:mod:`wordnet.data.build`),
and reading it.

    manifest.json           what it was made from and how: each source's path, size
                            and SHA-256, the settings, the counts, each file's SHA-256
    vocab.txt               one word a line, ``<unk>`` first, then by frequency
    counts.tsv              word <TAB> its count in the training split
    {split}_tokens.npy      the split's words (int32, 0-based), -1 after each sentence:
                            what the window scorer and skip-gram read
    {split}_4grams.npy      its 4-grams (rows w1, w2, w3, target; int32): the 4-gram
                            model's examples

The arrays are read memory-mapped (``numpy.load(mmap_mode="r")``): disk-backed, a
corpus larger than the memory is paged in as the training goes through it.  Each is
checked for its shape and for word numbers inside the vocabulary before a model
reads it (a Cython kernel indexes with them).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wordnet.data.dataset import BREAK, COLUMNS, SPLITS, DataError, Dataset, Vocabulary

FORMAT = "wordnet-data/1"
MANIFEST = "manifest.json"
VOCAB = "vocab.txt"
COUNTS = "counts.tsv"
CHECKED = 1 << 24           # elements checked at a time


def tokens_file(split: str) -> str:
    return f"{split}_tokens.npy"


def ngrams_file(split: str) -> str:
    return f"{split}_4grams.npy"


def is_built(folder) -> bool:
    """Whether ``folder`` is one ``data build`` made: its manifest says so."""
    try:
        return manifest(folder) is not None
    except DataError:
        return False


def manifest(folder) -> dict:
    """The manifest of ``folder``; DataError when it is not one ``data build`` wrote."""
    path = Path(folder) / MANIFEST
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") \
            from None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise DataError(f"{path}: not a manifest of `wordnet-pipeline data build` "
                        f"(format {FORMAT})")
    return found


def load(folder) -> Dataset:
    """The vocabulary and the three splits' 4-grams of the built ``folder``."""
    folder = Path(folder)
    about = manifest(folder)
    vocab = Vocabulary.read(folder / VOCAB)
    splits = [array(folder, ngrams_file(s), len(vocab), columns=COLUMNS) for s in SPLITS]
    # the digests the manifest holds (hashing gigabytes at each run would cost seconds)
    files = {name: digest for name, digest in about.get("files", {}).items()
             if name == VOCAB or name.endswith("_4grams.npy")}
    counts = about.get("counts", {}).get("splits", {})
    unknown = sum(c.get("unknown", 0) for c in counts.values() if isinstance(c, dict))
    return Dataset(vocab, *splits, files=files, source=folder, unknown_words=unknown,
                   manifest=about)


def tokens(folder, split: str, vocab_size: int) -> np.ndarray:
    """The words of ``split`` of the built ``folder``, BREAK after each sentence."""
    return array(Path(folder), tokens_file(split), vocab_size, columns=1, breaks=True)


def array(folder: Path, name: str, vocab_size: int, columns: int, breaks: bool = False):
    """``folder/name``, memory-mapped, checked: int32, ``columns`` wide (1: a vector),
    its numbers word numbers of a ``vocab_size`` vocabulary (or BREAK if ``breaks``)."""
    path = folder / name
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (the folder is not whole: build it again)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy array file ({e})") from None
    shape = (rows.ndim == 1) if columns == 1 else (rows.ndim == 2 and rows.shape[1] == columns)
    if rows.dtype != np.dtype("<i4") or not shape or len(rows) == 0:
        raise DataError(f"{path}: expected a non-empty int32 array of {columns} column(s), "
                        f"got {rows.dtype} {rows.shape}")
    low = BREAK if breaks else 0
    for start in range(0, len(rows), max(1, CHECKED // columns)):
        part = rows[start:start + CHECKED // columns]
        if part.min() < low or part.max() >= vocab_size:
            raise DataError(f"{path}: a word number outside the vocabulary of {vocab_size} "
                            "words (the folder is not whole: build it again)")
    return rows
