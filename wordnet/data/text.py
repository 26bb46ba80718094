"""A user's text as sentences of words: the reading and the tokenising rule of
``wordnet-pipeline data build``.

Reading.  A source is a file of UTF-8 text, compressed or not (``.gz``, ``.xz``), or
``-``, standard input.  It is read a line at a time, never whole.  A line that is
not UTF-8, or that holds a NUL byte (a binary file), stops the reading with a
one-line DataError naming the file and the line.

Words.  A line is lower-cased (unless ``lowercase=False``), then cut into tokens:
a word is a run of letters, digits and underscores, with apostrophes inside it
kept (``don't``, ``o'clock``); every other character that is not white space is a
token of its own (``,`` ``.`` ``"``), a run of one repeated character being one
token (``...``, ``--``).

Sentences.  ``lines`` (the default): each line that has a word is a sentence, as
the course's ``raw_sentences.txt`` has them.  ``text``: running text; a blank line
ends a paragraph, and a sentence ends after a token made of ``.``, ``!`` or ``?``
(with the closing quotes and brackets right after it).  In either, a sentence
longer than MAX_SENTENCE tokens is cut there, and a line longer than MAX_LINE
bytes is read in pieces cut at white space: a file with no line breaks is never
held whole, nor made one sentence.
"""
from __future__ import annotations

import gzip
import lzma
import re
from collections.abc import Iterator
from pathlib import Path

from wordnet.data.dataset import DataError

SENTENCE_MODES = ("lines", "text")
MAX_SENTENCE = 10_000                   # tokens; a longer sentence is cut
MAX_LINE = 1 << 20                      # bytes of a line read at a time
TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|([^\w\s])\1*")
ENDS = frozenset(".!?")                 # a token of these ends a sentence (text mode)
CLOSERS = frozenset("\"')]}\u201d\u2019\u00bb")   # ... and these stay with it
STDIN = "-"


def tokens(line: str, lowercase: bool = True) -> list[str]:
    """The tokens of ``line`` by the rule above."""
    if lowercase:
        line = line.lower()
    return [m.group() for m in TOKEN.finditer(line)]


class Source:
    """One text to read: ``name`` as the user gave it, read from ``path`` (``name``
    itself unless standard input was copied there); ``size``, its bytes on disk
    (compressed, if it is); ``done()``, the bytes of them read so far."""

    def __init__(self, name: str, path=None):
        self.name, self.path = name, Path(path if path is not None else name)
        self._raw = None
        self.lines_read = 0
        try:
            self.size = self.path.stat().st_size
        except OSError:
            self.size = 0                   # reading it says what is wrong

    def done(self) -> int:
        try:
            return self._raw.tell() if self._raw is not None else 0
        except (OSError, ValueError):       # closed
            return self.size

    def lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text without its end) for each line; DataError on a line that is
        not text.  A line longer than MAX_LINE bytes comes in pieces cut at white space
        (a file without line ends is not read whole into memory)."""
        n, carried = 1, b""
        with self._open() as stream:
            while raw := carried + stream.readline(MAX_LINE):
                carried, whole = b"", raw.endswith(b"\n")
                if not whole and len(raw) >= MAX_LINE:          # a piece of a long line
                    cut = max(raw.rfind(b" "), raw.rfind(b"\t"))
                    if cut > 0:
                        raw, carried = raw[:cut], raw[cut + 1:]
                    else:                   # no white space: cut before a character's bytes
                        cut = len(raw)
                        while cut > len(raw) - 4 and raw[cut - 1] & 0xC0 == 0x80:
                            cut -= 1
                        cut -= cut < len(raw) or raw[cut - 1] >= 0xC0
                        raw, carried = raw[:cut], raw[cut:]
                if b"\0" in raw:
                    raise DataError(f"{self.name}:{n}: a NUL byte: a binary file, not text")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{self.name}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x}"
                                    f" at byte {e.start + 1} of the line)") from None
                if n == 1 and not self.lines_read:
                    line = line.removeprefix("\ufeff")        # a byte-order mark: not a word
                self.lines_read = n
                yield n, line.rstrip("\r\n")
                n += whole

    def _open(self):
        if self.path.is_dir():
            raise DataError(f"{self.name}: is a folder, not a text file")
        try:
            self._raw = open(self.path, "rb")
        except OSError as e:
            raise DataError(f"{self.name}: cannot read ({e.strerror or e})") from None
        suffix = Path(self.name).suffix
        if suffix == ".gz":
            return _Checked(gzip.GzipFile(fileobj=self._raw), self._raw, self.name)
        if suffix == ".xz":
            return _Checked(lzma.LZMAFile(self._raw), self._raw, self.name)
        return self._raw


def sentences(source: Source, mode: str = "lines", lowercase: bool = True
              ) -> Iterator[list[str]]:
    """The sentences of ``source``, each a list of tokens (never empty)."""
    if mode not in SENTENCE_MODES:
        raise ValueError(f"unknown sentence mode {mode!r}: one of {', '.join(SENTENCE_MODES)}")
    sentence: list[str] = []
    ended = False                   # the sentence so far ends with . ! ? (and closers)
    for _, line in source.lines():
        words = tokens(line, lowercase)
        if mode == "lines":
            for start in range(0, len(words), MAX_SENTENCE):
                yield words[start:start + MAX_SENTENCE]
            continue
        if not words:                                   # a blank line ends a paragraph
            if sentence:
                yield sentence
            sentence, ended = [], False
            continue
        for word in words:
            if ended and word[0] not in ENDS and word not in CLOSERS:
                yield sentence
                sentence, ended = [], False
            sentence.append(word)
            ended = ended or word[0] in ENDS
            if len(sentence) == MAX_SENTENCE:
                yield sentence
                sentence, ended = [], False
    if sentence:
        yield sentence


class _Checked:
    """A decompressing stream whose corrupt data is a DataError naming the file."""

    def __init__(self, stream, raw, name: str):
        self.stream, self.raw, self.name = stream, raw, name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()
        self.raw.close()
        return False

    def readline(self, size: int = -1) -> bytes:
        try:
            return self.stream.readline(size)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise DataError(f"{self.name}: not a readable compressed file ({e})") from None
