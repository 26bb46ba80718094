"""The vocabulary and the train / validation / test 4-grams.

A data folder is either one ``wordnet-pipeline data build`` made from a user's text
(:mod:`wordnet.data.folder`: its own split, read memory-mapped), or holds
``vocab.txt`` and either the three CSV files
(``train_data.csv``, ``valid_data.csv``, ``test_data.csv``: rows
``w1,w2,w3,target``, 1-based) or ``raw_sentences.txt``, from which the split
is rebuilt (SPEC section 2): every 4-gram inside each sentence, in file
order; the first 372,550 train, the next 46,568 validate, the rest test.
Both routes give the same arrays.  In memory, rows are int32 and 0-based.

Without a folder, the data is the copy shipped with the package
(:mod:`wordnet.data.embedded`): the split is rebuilt from its ``raw_sentences.txt``
and each split checked against its pinned SHA-256.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wordnet.data import embedded
from wordnet.errors import WordNetError
from wordnet.fileio import MiB, read_bounded

CONTEXT = 3                  # D, words in
COLUMNS = CONTEXT + 1        # the 4-gram: context, then target
TRAIN_ROWS, VALID_ROWS = 372_550, 46_568
SPLITS = ("train", "valid", "test")
DATA_ENV = "WORDNET_DATA_DIR"
DEFAULT_DIR = Path("data")
UNK = "<unk>"                # the word that stands for every other (a built folder's vocabulary)
BREAK = -1                   # in a token stream: a sentence's end (or a word outside the vocabulary)
# The most a data file can sensibly hold (wordnet.fileio.read_bounded): a vocabulary of
# a million words, the published CSV files (5 MB) and sentences (2 MB) many times over.
VOCAB_LIMIT = 64 * MiB
TEXT_LIMIT = 512 * MiB


class DataError(WordNetError, ValueError):
    """A data file is missing or malformed; the message names the file (and line)."""


class UnknownWordError(WordNetError, KeyError):
    """A word is not in the vocabulary; ``suggestions`` holds the closest ones."""
    exit_code = 2

    def __init__(self, word: str, suggestions: list[str]):
        super().__init__(word)
        self.word, self.suggestions = word, suggestions

    def __str__(self) -> str:
        hint = f" (closest: {', '.join(self.suggestions)})" if self.suggestions else ""
        return f"'{self.word}' is not in the vocabulary{hint}"


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})
        object.__setattr__(self, "_lowercase", all(w == w.lower() for w in self.words))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words) -> np.ndarray:
        """0-based indices of ``words``; a word outside the vocabulary is ``<unk>`` when
        it has one (a folder ``data build`` made), else raises UnknownWordError."""
        out, unk = [], self.index.get(UNK)
        for w in words:
            if w not in self.index and unk is None:
                close = difflib.get_close_matches(w, self.words, n=3, cutoff=0.5)
                raise UnknownWordError(w, close)
            out.append(self.index.get(w, unk))
        return np.asarray(out, dtype=np.int32)

    def unknown(self, words) -> list[str]:
        """Those of ``words`` outside the vocabulary (which :meth:`encode` reads as <unk>)."""
        return [w for w in words if w not in self.index]

    def has_unk(self) -> bool:
        """Whether a word outside it is read as <unk> (a vocabulary ``data build`` made)."""
        return UNK in self.index

    def is_lowercase(self) -> bool:
        return self._lowercase

    @classmethod
    def read(cls, path: Path) -> "Vocabulary":
        """The vocabulary file at ``path``: UTF-8, one word a line; a byte-order mark
        at its start (as some editors write) is not part of the first word."""
        path = Path(path)
        try:
            text = read_bounded(path, VOCAB_LIMIT, "vocabulary", DataError).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read the vocabulary ({_reason(e)})") from None
        return cls.parse(text, path)

    @classmethod
    def embedded(cls) -> "Vocabulary":
        """The vocabulary shipped with the package."""
        return cls.parse(embedded.read_bytes("vocab.txt").decode("ascii"), "vocab.txt (embedded)")

    @classmethod
    def parse(cls, text: str, origin) -> "Vocabulary":
        """One word per line; ``origin`` names the text in messages."""
        words = []
        for n, line in enumerate(text.splitlines(), 1):
            word = line.strip()
            if not word or len(word.split()) != 1:
                raise DataError(f"{origin}:{n}: expected one word per line, got {line!r}")
            words.append(word)
        if not words:
            raise DataError(f"{origin}: the vocabulary is empty")
        if len(set(words)) != len(words):
            raise DataError(f"{origin}: a word appears twice")
        return cls(tuple(words))


@dataclass(frozen=True)
class Dataset:
    vocab: Vocabulary
    train: np.ndarray        # (rows, 4) int32, 0-based: w1, w2, w3, target
    valid: np.ndarray
    test: np.ndarray
    files: dict[str, str]    # file name -> SHA-256 of the files read (a built folder's manifest's)
    source: Path | None      # the data folder; None: the copy shipped with the package
    unknown_words: int = 0   # words outside the vocabulary: skipped (raw_sentences.txt), or <unk>
    manifest: dict | None = field(default=None, compare=False)   # a built folder's (data build)

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def digest(self, name: str) -> str:
        """SHA-256 of split ``name``'s rows as 0-based little-endian int32."""
        return hashlib.sha256(np.ascontiguousarray(self.split(name), "<i4").tobytes()).hexdigest()

    def is_published(self) -> bool:
        """Whether the splits are those of the course (and of the C reference's runs)."""
        if (len(self.train), len(self.valid)) != (TRAIN_ROWS, VALID_ROWS):
            return False
        return all(self.digest(s) == embedded.SPLIT_SHA256[s] for s in SPLITS)

    def has_course_vocabulary(self) -> bool:
        """Whether the words are the course's 250, those of the C reference's models."""
        return self.vocab == Vocabulary.embedded()

    def dataset_name(self, split: str) -> str:
        """The name of ``split`` as MLflow's dataset: the course's ``train``; a built
        folder's ``FOLDER-train``, so that runs on different corpora tell apart."""
        return split if self.manifest is None else f"{self.source.resolve().name}-{split}"

    def file_of(self, split: str) -> str:
        """The file ``split``'s 4-grams were read from (a key of ``files``)."""
        for name in (f"{split}_4grams.npy", f"{split}_data.csv"):
            if name in self.files:
                return name
        return "raw_sentences.txt"

    def path(self, name: str) -> Path:
        """Where the file ``name`` was read from (the compressed copy, if embedded)."""
        if self.source is None:
            return Path(embedded.location()) / f"{name}.xz"
        return self.source / name

    def describe(self) -> str:
        return "the copy shipped with the package" if self.source is None else f"{self.source}/"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def has_data(folder: Path) -> bool:
    """Whether ``folder`` holds what :func:`load_dataset` reads."""
    folder = Path(folder)
    # exists(), not is_file(): a vocab.txt that is a folder or a FIFO is an error to
    # report when reading it, not a reason to take the shipped copy instead
    from wordnet.data import folder as built  # it builds on this module
    if built.is_built(folder):                      # a folder `data build` made
        return True
    splits = all((folder / f"{s}_data.csv").exists() for s in SPLITS)
    return (folder / "vocab.txt").exists() and (splits or (folder / "raw_sentences.txt").exists())


def find_data(option: str | os.PathLike | None = None) -> Path | None:
    """The data folder to read: ``option`` (--data-dir), else $WORDNET_DATA_DIR, else
    ``data/`` if it holds the data; None means the copy shipped with the package.

    A folder named by the option or the variable must hold the data: a typo
    should not quietly train on something else.
    """
    named = option or os.environ.get(DATA_ENV)
    if named:
        if not has_data(Path(named)):
            via = "--data-dir" if option else DATA_ENV
            raise DataError(f"{named}: no WordNet data there ({via}): it needs vocab.txt and "
                            "the three *_data.csv files or raw_sentences.txt; `wordnet-pipeline "
                            f"data fetch --data-dir {named}` fills it, `wordnet-pipeline data "
                            f"build TEXT --out {named}` makes it from your text, or leave "
                            f"{via} unset to use the copy shipped with the package")
        return Path(named)
    return DEFAULT_DIR if has_data(DEFAULT_DIR) else None


def load_dataset(data_dir=None) -> Dataset:
    """The vocabulary and the three splits from ``data_dir`` (CSV files if present), or
    from the copy shipped with the package when ``data_dir`` is None."""
    if data_dir is None:
        return _load_embedded()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such data folder")
    from wordnet.data import folder  # it builds on this module
    if folder.is_built(data_dir):
        return folder.load(data_dir)
    vocab = Vocabulary.read(_need(data_dir / "vocab.txt"))
    csvs = [data_dir / f"{name}_data.csv" for name in SPLITS]
    unknown = 0
    if all(p.exists() for p in csvs):
        splits = [read_csv(p, len(vocab)) for p in csvs]
        used = [data_dir / "vocab.txt", *csvs]
    else:
        raw = _need(data_dir / "raw_sentences.txt",
                    hint="it needs the three *_data.csv files or raw_sentences.txt")
        tokens, unknown = tokenize(_read_text(raw), vocab)
        splits = split_ngrams(tokens)
        used = [data_dir / "vocab.txt", raw]
    return Dataset(vocab, *splits, files={p.name: sha256(p) for p in used}, source=data_dir,
                   unknown_words=unknown)


def _load_embedded() -> Dataset:
    vocab = Vocabulary.embedded()
    raw = embedded.read_bytes("raw_sentences.txt")
    tokens, unknown = tokenize(raw.decode("utf-8"), vocab)
    data = Dataset(vocab, *split_ngrams(tokens), source=None, unknown_words=unknown,
                   files={name: embedded.SHA256[name] for name in ("vocab.txt", "raw_sentences.txt")})
    for split in SPLITS:
        embedded.check(split, data.digest(split), embedded.SPLIT_SHA256)
    return data


def csv_bytes(rows: np.ndarray) -> bytes:
    """0-based rows as the CSV files hold them: ``w1,w2,w3,target``, 1-based, one a line."""
    return "".join(f"{a},{b},{c},{t}\n" for a, b, c, t in (rows + 1).tolist()).encode("ascii")


def read_csv(path: Path, vocab_size: int) -> np.ndarray:
    """Rows ``w1,w2,w3,target`` (1-based) as an (rows, 4) 0-based int32 array."""
    path = Path(path)
    try:
        text = read_bounded(path, TEXT_LIMIT, "4-gram CSV file", DataError).decode("ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({_reason(e)})") from None
    lines = text.splitlines()
    try:  # the fast path, numpy's parser; on any doubt, the slow one finds the faulty line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # "input contained no data"
            rows = np.loadtxt(lines, delimiter=",", dtype=np.int64, comments=None, ndmin=2)
        # loadtxt skips blank lines, which are faults here: count the rows
        ok = rows.shape == (len(lines), COLUMNS) and len(rows) > 0
        ok = ok and rows.min() >= 1 and rows.max() <= vocab_size
    except (ValueError, OverflowError):
        ok = False
    if not ok:
        _raise_first_bad_row(path, lines, vocab_size)
    return (rows - 1).astype(np.int32)


def _raise_first_bad_row(path, lines, vocab_size):
    for n, line in enumerate(lines, 1):
        fields = line.split(",")
        if len(fields) != COLUMNS:
            raise DataError(f"{path}:{n}: expected {COLUMNS} comma-separated word indices, "
                            f"got {len(fields)} field(s): {line[:60]!r}")
        for f in fields:
            try:
                v = int(f)
            except ValueError:
                raise DataError(f"{path}:{n}: {f.strip()[:30]!r} is not a word index") from None
            if not 1 <= v <= vocab_size:
                raise DataError(f"{path}:{n}: word index {v} outside 1..{vocab_size}")
    raise DataError(f"{path}: no rows")


def tokenize(text: str, vocab: Vocabulary) -> tuple[np.ndarray, int]:
    """(the words of ``text`` as 0-based indices, each line ended by BREAK; the number
    of words outside the vocabulary).

    Each line is lower-cased and split on white space.  A word outside the
    vocabulary becomes a BREAK too: it cuts its sentence in two, so no 4-gram
    contains it.
    """
    index, tokens, unknown = vocab.index, [], 0
    for line in text.splitlines():
        words = [index.get(w, BREAK) for w in line.lower().split()]
        unknown += words.count(BREAK)
        tokens += words
        tokens.append(BREAK)
    return np.asarray(tokens, dtype=np.int32), unknown


def split_ngrams(tokens: np.ndarray):
    """(train, valid, test): every 4-gram of ``tokens`` without a BREAK in it, that
    is, inside a sentence, split in file order."""
    windows = np.lib.stride_tricks.sliding_window_view(tokens, COLUMNS)
    rows = np.ascontiguousarray(windows[(windows != BREAK).all(axis=1)], dtype=np.int32)
    if len(rows) <= TRAIN_ROWS + VALID_ROWS:
        raise DataError(f"only {len(rows)} 4-grams: the split needs more than "
                        f"{TRAIN_ROWS + VALID_ROWS}")
    a, b = TRAIN_ROWS, TRAIN_ROWS + VALID_ROWS
    return rows[:a].copy(), rows[a:b].copy(), rows[b:].copy()


def _read_text(path: Path) -> str:
    try:
        return read_bounded(path, TEXT_LIMIT, "sentences file", DataError).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({_reason(e)})") from None


def _need(path: Path, hint: str = "") -> Path:
    if not path.exists():                # what is there but not a file: read_bounded says
        raise DataError(f"{path}: missing" + (f" ({hint})" if hint else ""))
    return path


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
