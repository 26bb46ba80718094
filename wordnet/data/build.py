"""``wordnet-pipeline data build``: a user's text made a data folder every model reads.

Two passes, neither holding the text in memory:

1. *Reading.*  Each sentence (:mod:`wordnet.data.text`) goes to the training,
   validation or test split by a draw of a seeded generator (SHARES), and its
   words, as numbers in the order they first appear ("types"), are appended to
   that split's scratch file.  Only the table of distinct words is in memory.
2. *Writing.*  The vocabulary is the most frequent words of the *training* split
   (``min_count`` times at least, ``vocab_size - 1`` at most, ties in order of first
   appearance), after ``<unk>``, which stands for every other word.  Each split's
   scratch file is mapped onto it in chunks, into ``{split}_tokens.npy`` and
   ``{split}_4grams.npy``.

The folder (:mod:`wordnet.data.folder` reads it) is made under a temporary name
beside ``out`` and renamed to it once whole, its manifest written last: an error,
Ctrl-C or a full disk leaves no folder that looks like data.  A build killed outright
(SIGKILL, a power cut) cannot remove its temporary folder, which may hold gigabytes:
the build holds a lock on it (flock, released by the kernel when the process dies),
and the next build of the same ``out`` removes such a folder that nobody holds.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from wordnet.data import folder as layout
from wordnet.data.dataset import BREAK, COLUMNS, SPLITS, UNK, DataError, sha256
from wordnet.data.text import STDIN, Source, sentences
from wordnet.fileio import umask, write_json

SHARES = (0.8, 0.1, 0.1)        # of the sentences: training, validation, test
BATCH = 4096                    # sentences given their splits at a time
FLUSH = 1 << 20                 # tokens buffered before a write
CHUNK = 1 << 22                 # tokens mapped at a time in the second pass
# A temporary folder younger than this is left alone even when unlocked: its build may
# not have locked it yet (it does so just after making it).
LOCK_GRACE = 5.0                # seconds


def build(texts: Sequence[str], out: Path, vocab_size: int = 10_000, min_count: int = 5,
          lowercase: bool = True, mode: str = "lines", seed: int = 0,
          progress: Callable | None = None, tell: Callable[[str], None] | None = None
          ) -> dict:
    """Build the data folder ``out`` from ``texts`` (paths, or ``-``: standard input);
    the manifest it wrote.  ``progress(total_bytes, label)`` gives a context manager
    with ``update(n)``, told the bytes read (e.g. ``click.progressbar``); ``tell`` is
    told what was found left by a killed build, and removed."""
    out = Path(out)
    if list(texts).count(STDIN) > 1:
        raise DataError("- (standard input) given twice: it can be read once")
    _check_out(out)
    if vocab_size < 2:
        raise DataError(f"--vocab-size {vocab_size}: a vocabulary needs 2 words at least "
                        f"({UNK} and one other)")
    parent = out.parent if str(out.parent) else Path(".")
    _remove_abandoned(out, parent, tell or (lambda message: None))
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=parent))
    held = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)        # ours while this process lives
        started = time.monotonic()
        sources = [_spooled(staging) if t == STDIN else Source(t) for t in texts]
        described = [_describe(s) for s in sources]     # every file there before any work
        read = _read(sources, staging, mode, lowercase, seed, progress)
        vocab, counts, lookup = _vocabulary(read, vocab_size, min_count, sources)
        figures = _write(read, lookup, staging, progress)
        (staging / layout.VOCAB).write_text("".join(f"{w}\n" for w in vocab), "utf-8")
        (staging / layout.COUNTS).write_text(
            "".join(f"{w}\t{c}\n" for w, c in zip(vocab, counts)), "utf-8")
        for path in [read.path(s) for s in SPLITS] + [Path(s.path) for s in sources]:
            if path.parent == staging:                  # scratch files, standard input's copy
                path.unlink()
        manifest = {
            "format": layout.FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sources": described,
            "settings": {"vocab_size": vocab_size, "min_count": min_count,
                         "lowercase": lowercase, "sentences": mode, "seed": seed,
                         "shares": dict(zip(SPLITS, SHARES))},
            "counts": {"lines": read.lines, "vocabulary": len(vocab), **figures},
            "files": {p.name: sha256(p) for p in sorted(staging.iterdir())},
            "seconds": round(time.monotonic() - started, 1),
        }
        for path in staging.iterdir():                  # on disk before it is renamed
            _sync(path)
        write_json(staging / layout.MANIFEST, manifest)
        os.chmod(staging, 0o777 & ~umask())            # mkdtemp's 0700 would hide it
        try:
            os.rename(staging, out)                     # over an empty folder only
        except OSError as e:
            raise DataError(f"{out}: cannot make it ({e.strerror}): choose another --out") \
                from None
        try:
            _sync(parent)                               # the rename, too
        except OSError:                                 # made all the same
            pass
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)      # gone once renamed
        os.close(held)


def _remove_abandoned(out: Path, parent: Path, tell: Callable[[str], None]) -> None:
    """The temporary folders that builds of ``out`` killed outright left in ``parent``,
    removed: those no process holds a lock on (a running build's is left alone)."""
    for path in parent.glob(f".{glob.escape(out.name)}.building-*"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:                         # gone meanwhile, or not a folder
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if time.time() - os.fstat(fd).st_mtime < LOCK_GRACE:
                continue                        # a build's that has not locked it yet
            shutil.rmtree(path, ignore_errors=True)
            tell(f"removed {path}/, left by a build of {out} that was killed")
        except BlockingIOError:                 # a build of the same folder, running
            continue
        finally:
            os.close(fd)


class _Read:
    """What the first pass found: each split's scratch file of word numbers (BREAK
    after each sentence), the words in the order first found, and the counts."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.types = defaultdict(lambda: len(self.types))   # word -> its number
        self.sentences = dict.fromkeys(SPLITS, 0)
        self.words = dict.fromkeys(SPLITS, 0)
        self.lines = 0

    def path(self, split: str) -> Path:
        return self.staging / f"{split}.scratch"


def _read(sources, staging: Path, mode, lowercase, seed, progress) -> _Read:
    read, rng = _Read(staging), np.random.default_rng(seed)
    cuts = np.cumsum(SHARES[:-1])
    with ExitStack() as stack:
        files = {s: stack.enter_context(open(read.path(s), "wb")) for s in SPLITS}
        buffers = {s: [] for s in SPLITS}
        bar = _Bar(progress, sum(s.size for s in sources), "reading")
        stack.enter_context(bar)
        before = 0                                  # bytes of the sources read before
        for source in sources:
            batch, found = [], 0
            for sentence in sentences(source, mode, lowercase):
                batch.append(sentence)
                if len(batch) == BATCH:
                    _assign(batch, rng, cuts, read, buffers, files)
                    found += len(batch)
                    batch = []
                    bar.at(before + source.done())
            _assign(batch, rng, cuts, read, buffers, files)
            if not found + len(batch):
                raise DataError(f"{source.name}: no words in it")
            read.lines += source.lines_read
            before += source.size
            bar.at(before)
        for s in SPLITS:
            _flush(buffers[s], files[s])
    return read


class _Bar:
    """``progress(total, label)`` told where the work is (None: nothing shown)."""

    def __init__(self, progress, total: int, label: str):
        self.bar = progress(total, label) if progress else nullcontext()
        self.done = 0

    def __enter__(self):
        self.shown = self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def at(self, done: int) -> None:
        if self.shown is not None and done > self.done:
            self.shown.update(done - self.done)
            self.done = done


def _assign(batch, rng, cuts, read: _Read, buffers, files) -> None:
    """The sentences of ``batch`` to their splits (a draw each, in order)."""
    if not batch:
        return
    splits = np.searchsorted(cuts, rng.random(len(batch)), side="right")
    number = read.types.__getitem__
    for sentence, k in zip(batch, splits.tolist()):
        split = SPLITS[k]
        buffer = buffers[split]
        buffer.extend(map(number, sentence))
        buffer.append(BREAK)
        read.sentences[split] += 1
        read.words[split] += len(sentence)
        if len(buffer) >= FLUSH:
            _flush(buffer, files[split])


def _flush(buffer: list, file) -> None:
    np.asarray(buffer, dtype="<i4").tofile(file)
    buffer.clear()


def _vocabulary(read: _Read, vocab_size: int, min_count: int, sources):
    """(the vocabulary, ``<unk>`` first; each word's count in the training split; the
    map from the first pass's numbers to the vocabulary's)."""
    named = sources[0].name if len(sources) == 1 else "the texts"
    if not sum(read.words.values()):
        raise DataError(f"{named}: no words in it")
    counts = np.zeros(len(read.types), dtype=np.int64)
    for chunk in _chunks(read, "train"):
        counts += np.bincount(chunk[chunk != BREAK], minlength=len(counts))
    if np.count_nonzero(counts) < 2:
        raise DataError(f"{named}: {np.count_nonzero(counts)} distinct word(s) in its training "
                        "split: a vocabulary needs 2 at least")
    order = np.argsort(-counts, kind="stable")    # the most frequent first; ties as found
    kept = order[:vocab_size - 1]
    kept = kept[counts[kept] >= max(min_count, 1)]
    if not len(kept):
        raise DataError(f"{named}: no word appears {min_count} times in its training split "
                        "(--min-count): give more text or a lower --min-count")
    lookup = np.zeros(len(counts), dtype="<i4")   # every other word: <unk>, 0
    lookup[kept] = np.arange(1, len(kept) + 1)
    words = list(read.types)                      # in order of first appearance
    unknown = int(counts.sum() - counts[kept].sum())
    return ([UNK] + [words[i] for i in kept.tolist()],
            [unknown] + counts[kept].tolist(), lookup)


def _write(read: _Read, lookup: np.ndarray, staging: Path, progress) -> dict:
    """Each split's tokens and 4-grams, over the vocabulary; their counts."""
    figures, written = {}, 0
    total = sum(read.words.values()) + sum(read.sentences.values())
    with _Bar(progress, total, "writing") as bar:
        for split in SPLITS:
            unknown, tail = 0, np.zeros(0, "<i4")
            with NpyWriter(staging / layout.tokens_file(split)) as tokens, \
                    NpyWriter(staging / layout.ngrams_file(split), COLUMNS) as ngrams:
                for chunk in _chunks(read, split):
                    mapped = np.where(chunk == BREAK, BREAK, lookup[np.maximum(chunk, 0)])
                    unknown += int(np.count_nonzero(mapped == 0))
                    tokens.append(mapped)
                    # a 4-gram may straddle two chunks: the last 3 tokens go on with it
                    joined = np.concatenate([tail, mapped])
                    if len(joined) >= COLUMNS:
                        windows = np.lib.stride_tricks.sliding_window_view(joined, COLUMNS)
                        ngrams.append(windows[(windows != BREAK).all(axis=1)])
                    tail = joined[-(COLUMNS - 1):]
                    written += len(chunk)
                    bar.at(written)
            if not ngrams.rows:
                raise DataError(f"the {split} split has no 4-gram ({read.sentences[split]:,} "
                                "sentence(s) drawn to it, none of 4 words or more): the text "
                                "is too short for an 80/10/10 split")
            figures[split] = {"sentences": read.sentences[split], "words": read.words[split],
                              "unknown": unknown, "4grams": ngrams.rows}
    return {"splits": figures}


def _chunks(read: _Read, split: str):
    """The first pass's numbers of ``split``, CHUNK at a time: read, not memory-mapped,
    so that the pages of a scratch file larger than the memory are not the build's."""
    with open(read.path(split), "rb") as f:
        while len(chunk := np.fromfile(f, dtype="<i4", count=CHUNK)):
            yield chunk


class NpyWriter:
    """An ``.npy`` file of int32 rows of ``columns`` (1: a vector) written as they come:
    its header, which holds the row count, is written last, over the room kept for
    it (HEADER bytes, numpy's own layout)."""

    HEADER = 128

    def __init__(self, path: Path, columns: int = 1):
        self.path, self.columns, self.rows = path, columns, 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * self.HEADER)

    def append(self, rows: np.ndarray) -> None:
        np.ascontiguousarray(rows, dtype="<i4").tofile(self.file)
        self.rows += len(rows)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with self.file:
            if exc[0] is None:
                shape = (self.rows,) if self.columns == 1 else (self.rows, self.columns)
                self.file.seek(0)
                np.lib.format.write_array_header_1_0(
                    self.file, {"descr": "<i4", "fortran_order": False, "shape": shape})
                if self.file.tell() != self.HEADER:
                    raise AssertionError(f"{self.path}: a header of {self.file.tell()} bytes")
        return False


def _check_out(out: Path) -> None:
    if out.is_dir() and any(out.iterdir()) or out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists: choose a new folder for --out (nothing is replaced)")
    try:
        (out.parent if str(out.parent) else Path(".")).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out.parent}: cannot make it ({e.strerror})") from None


def _spooled(staging: Path) -> Source:
    """Standard input, copied into ``staging`` (two passes read it)."""
    copy = staging / "stdin.txt"
    with open(copy, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    return Source(STDIN, copy)


def _describe(source: Source) -> dict:
    """A source as the manifest names it: its path, size and SHA-256."""
    path = Path(source.path)
    if not path.exists():
        raise DataError(f"{source.name}: no such file")
    if not path.is_file():
        raise DataError(f"{source.name}: not a file")
    try:
        digest = sha256(path)
    except OSError as e:
        raise DataError(f"{source.name}: cannot read ({e.strerror})") from None
    return {"path": source.name if source.name == STDIN else str(path.resolve()),
            "bytes": path.stat().st_size, "sha256": digest}


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
