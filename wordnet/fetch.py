"""Find the data folder, or fill it: download the upstream files or copy a local folder.

Every file is checked against the SHA-256 pinned below before it is written,
so a data folder never holds a file that does not match.  ``train_data.csv``
is not published upstream: it is rebuilt from ``raw_sentences.txt`` by the
split rule of :mod:`wordnet.data` (SPEC section 2) and checked against its
own pin.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from .checkpoint import atomic_write
from .data import DataError, Vocabulary, read_sentences, sha256, split_ngrams

BASE_URL = "https://raw.githubusercontent.com/gingerbig/wordnet/master"
URL_ENV = "WORDNET_DATA_URL"          # overrides BASE_URL, e.g. for a mirror
DATA_ENV = "WORDNET_DATA_DIR"
DEFAULT_DIR = Path("data")
TIMEOUT = 30                          # seconds per download

# file -> (upstream path, SHA-256)
UPSTREAM = {
    "vocab.txt": ("src/data/vocab.txt",
                  "963df394e8a2b435da8d25595fdafcf6145095477ca22c7458475cafac5ae077"),
    "vocab_ordered.txt": ("src/data/vocab_ordered.txt",
                          "2f6095a83d957ac40ed9e0ad3cd01d3007e4c758115721af9512c021fd1d397a"),
    "raw_sentences.txt": ("raw-data/raw_sentences.txt",
                          "68f938bf5e07dd2a93ba94b8fe6e885d0e9c47bdd9288e4240392b01a516252f"),
    "valid_data.csv": ("src/data/valid_data.csv",
                       "55df54636164cd170ee234463471d3c7e9a0f83342ca6bf19fc7b6f6d7a7482e"),
    "test_data.csv": ("src/data/test_data.csv",
                      "842a555d72dac89e14c98d28968a084748c0e26b4a5c7c33d7f1fef040dfbe70"),
    "model9-3000.bin": ("src/model9-3000.bin",
                        "b954d6fc2c0ceb9e0ac0b83c0f22838e648541b965d4ddfdbb5b2d6536a3bec3"),
}
TRAIN_CSV = "train_data.csv"
TRAIN_SHA256 = "5f8816ab8fbdbf0e8cde1900f65a4d360b6bb2e631438792092045da3d4375d8"
PINNED = {name: digest for name, (_, digest) in UPSTREAM.items()} | {TRAIN_CSV: TRAIN_SHA256}

HOW_TO_POINT = (f"point at a local copy with --data-dir DIR, {DATA_ENV}=DIR "
                "or `wordnet-pipeline data fetch --from DIR`")


class FetchError(Exception):
    """The data cannot be fetched or does not match its pinned SHA-256."""


def data_dir(option: str | os.PathLike | None = None) -> Path:
    """The data folder: ``option`` (--data-dir), else $WORDNET_DATA_DIR, else ``data/``."""
    return Path(option or os.environ.get(DATA_ENV) or DEFAULT_DIR)


def has_data(folder: Path) -> bool:
    """Whether ``folder`` holds what :func:`wordnet.data.load_dataset` reads."""
    splits = all((folder / f"{s}_data.csv").is_file() for s in ("train", "valid", "test"))
    return (folder / "vocab.txt").is_file() and (splits or (folder / "raw_sentences.txt").is_file())


def fetch(dest: Path, source: Path | None = None, base_url: str | None = None,
          log=lambda message: None) -> None:
    """Fill ``dest`` with the pinned files, from ``source`` (a folder) or downloaded.

    Files already in ``dest`` with the right SHA-256 are kept.  A file that
    does not match is removed and FetchError raised.
    """
    dest = Path(dest)
    if source is not None and not Path(source).is_dir():
        raise FetchError(f"{source}: no such folder")
    base_url = (base_url or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"{dest}: cannot create the data folder ({e.strerror})") from None
    for name, (upstream, _) in UPSTREAM.items():
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
        if source is not None and (Path(source) / TRAIN_CSV).is_file():
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
        path.unlink(missing_ok=True)
        raise FetchError(f"{path.name}: SHA-256 {digest[:12]}… does not match the pinned "
                         f"{PINNED[path.name][:12]}…; the file was removed")
    try:
        atomic_write(path, blob)
    except OSError as e:
        raise FetchError(f"{path}: cannot write ({e.strerror})") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise FetchError(f"{path}: cannot read ({e.strerror})") from None


def _download(url: str, name: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        reason = str(getattr(e, "reason", e))
    raise FetchError(f"cannot download {name} from {url} ({reason}); offline? {HOW_TO_POINT}")


def _rebuild_train(folder: Path) -> bytes:
    try:
        sentences, _ = read_sentences(folder / "raw_sentences.txt",
                                      Vocabulary.read(folder / "vocab.txt"))
        train, _, _ = split_ngrams(sentences)
    except DataError as e:
        raise FetchError(f"cannot rebuild {TRAIN_CSV}: {e}") from None
    return "".join(f"{a},{b},{c},{t}\n" for a, b, c, t in (train + 1).tolist()).encode("ascii")
