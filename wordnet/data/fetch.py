"""Fill a data folder: download the upstream files or copy them from a local folder.

The pipeline never needs this (the package ships the data, see
:mod:`wordnet.data.embedded`); it is there to get upstream's files as they are
published.  Every file is checked against the SHA-256 pinned in
:mod:`wordnet.data.embedded` before it is written, so fetching never writes a file
that does not match, nor deletes one it did not write.  ``train_data.csv`` is not published upstream: it is
rebuilt from ``raw_sentences.txt`` by the split rule of :mod:`wordnet.data.dataset`
(SPEC section 2) and checked against its own pin.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from wordnet.data.dataset import (
    DATA_ENV,
    DEFAULT_DIR,
    DataError,
    Vocabulary,
    csv_bytes,
    sha256,
    split_ngrams,
    tokenize,
)
from wordnet.data.embedded import CSV_SHA256, SHA256
from wordnet.errors import WordNetError
from wordnet.fileio import MiB, atomic_write, read_bounded

BASE_URL = "https://raw.githubusercontent.com/gingerbig/wordnet/master"
URL_ENV = "WORDNET_DATA_URL"          # overrides BASE_URL, e.g. for a mirror
TIMEOUT = 30                          # seconds without a byte, per download
DEADLINE = 600                        # seconds for any one download, whole
CHUNK = 1 << 16

# file -> its path upstream
UPSTREAM = {
    "vocab.txt": "src/data/vocab.txt",
    "vocab_ordered.txt": "src/data/vocab_ordered.txt",
    "raw_sentences.txt": "raw-data/raw_sentences.txt",
    "valid_data.csv": "src/data/valid_data.csv",
    "test_data.csv": "src/data/test_data.csv",
    "model9-3000.bin": "src/model9-3000.bin",
}
TRAIN_CSV = "train_data.csv"
PINNED = {name: (SHA256 | CSV_SHA256)[name] for name in (*UPSTREAM, TRAIN_CSV)}
# The most each file can hold, read or downloaded: some times the published files'
# sizes (at most 5 MB); the SHA-256 pin decides the rest.
LIMITS = {name: 64 * MiB for name in PINNED} | {"vocab.txt": MiB, "vocab_ordered.txt": MiB}

HOW_TO_POINT = (f"point at a local copy with --data-dir DIR, {DATA_ENV}=DIR "
                "or `wordnet-pipeline data fetch --from DIR`")


class FetchError(WordNetError):
    """The data cannot be fetched or does not match its pinned SHA-256."""


def data_dir(option: str | os.PathLike | None = None) -> Path:
    """Where to put the data: ``option`` (--data-dir), else $WORDNET_DATA_DIR, else ``data/``."""
    return Path(option or os.environ.get(DATA_ENV) or DEFAULT_DIR)


def fetch(dest: Path, source: Path | None = None, base_url: str | None = None,
          log=lambda message: None) -> None:
    """Fill ``dest`` with the pinned files, from ``source`` (a folder) or downloaded.

    Files already in ``dest`` with the right SHA-256 are kept.  A file is written
    (atomically) only once its bytes match their pin; when they do not, FetchError
    is raised and whatever ``dest`` held under that name is left as it was.  When
    nothing could be fetched (offline, Ctrl-C), the folders made for ``dest`` are
    removed: no empty ``data/`` is left to look like a data folder.
    """
    dest = Path(dest)
    if source is not None and not Path(source).is_dir():
        raise FetchError(f"{source}: no such folder")
    base_url = (base_url or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")
    made = [p for p in (dest, *dest.parents) if not p.exists()]     # deepest first
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"{dest}: cannot create the data folder ({e.strerror})") from None
    try:
        _fill(dest, source, base_url, log)
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()                  # only when empty: nothing fetched there
            except OSError:
                break
        raise


def _fill(dest: Path, source: Path | None, base_url: str, log) -> None:
    for name, upstream in UPSTREAM.items():
        if _verified(dest / name):
            continue
        if source is not None:
            blob = _read(Path(source) / name)
        else:
            log(f"downloading {name}")
            blob = _download(f"{base_url}/{upstream}", name)
        _write_verified(dest / name, blob)
        log(f"{name}: SHA-256 ok")
    if not _verified(dest / TRAIN_CSV):
        if source is not None and (Path(source) / TRAIN_CSV).exists():
            blob = _read(Path(source) / TRAIN_CSV)
        else:
            log(f"rebuilding {TRAIN_CSV} from raw_sentences.txt")
            blob = _rebuild_train(dest)
        _write_verified(dest / TRAIN_CSV, blob)
        log(f"{TRAIN_CSV}: SHA-256 ok")


def _verified(path: Path) -> bool:
    return path.is_file() and sha256(path) == PINNED[path.name]


def _write_verified(path: Path, blob: bytes) -> None:
    digest = hashlib.sha256(blob).hexdigest()
    if digest != PINNED[path.name]:
        kept = f"{path} left as it was" if path.exists() else "nothing written"
        raise FetchError(f"{path.name}: SHA-256 {digest[:12]}… does not match the pinned "
                         f"{PINNED[path.name][:12]}…; {kept}")
    try:
        atomic_write(path, blob)
    except OSError as e:
        raise FetchError(f"{path}: cannot write ({e.strerror})") from None


def _read(path: Path) -> bytes:
    try:
        return read_bounded(path, LIMITS[path.name], path.name, FetchError)
    except OSError as e:
        raise FetchError(f"{path}: cannot read ({e.strerror})") from None


def _download(url: str, name: str) -> bytes:
    """The body at ``url``, in chunks: refused when it announces, or brings, more than
    ``name`` can hold (LIMITS), or takes longer than DEADLINE seconds."""
    limit, deadline = LIMITS[name], time.monotonic() + DEADLINE
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            announced = response.headers.get("Content-Length")
            if announced is not None and not (announced.isdigit() and int(announced) <= limit):
                raise FetchError(f"cannot download {name} from {url}: it announces "
                                 f"{announced[:30]} bytes, more than {name} can hold "
                                 f"({limit:,} bytes at most); {HOW_TO_POINT}")
            chunks, size = [], 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"cannot download {name} from {url}: more than {limit:,} "
                                     f"bytes, more than {name} can hold; {HOW_TO_POINT}")
                if time.monotonic() > deadline:
                    raise FetchError(f"cannot download {name} from {url}: not done in "
                                     f"{DEADLINE} s; {HOW_TO_POINT}")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = " ".join(str(getattr(e, "reason", e)).split()) or type(e).__name__
    raise FetchError(f"cannot download {name} from {url} ({reason}); offline? {HOW_TO_POINT}")


def _rebuild_train(folder: Path) -> bytes:
    try:
        raw = folder / "raw_sentences.txt"
        text = read_bounded(raw, LIMITS[raw.name], raw.name, FetchError).decode("utf-8")
        train, _, _ = split_ngrams(tokenize(text, Vocabulary.read(folder / "vocab.txt"))[0])
    except (OSError, UnicodeDecodeError, DataError) as e:
        raise FetchError(f"cannot rebuild {TRAIN_CSV}: {e}") from None
    return csv_bytes(train)
