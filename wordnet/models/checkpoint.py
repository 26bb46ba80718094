"""Checkpoints in the C reference's binary format (SPEC section 7).

A 72-byte header, the C struct ``HyperParameter`` with natural alignment,
little-endian, then float64 W1, W2, b2, W3, b3, row-major.  Files written by
the C program load here, and files written here load there.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import struct
import zipfile
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from wordnet.data import embedded
from wordnet.errors import WordNetError
from wordnet.fileio import atomic_write

# int32 x5, pad, float64 x2, int32 x7, pad
HEADER = struct.Struct("<5i4x2d7i4x")
MAX_UNITS = 1 << 20            # sanity bound on any one size in a header


class CheckpointError(WordNetError, ValueError):
    """A checkpoint cannot be read or does not fit; the message names the file."""


@dataclass(frozen=True)
class Header:
    batch_size: int            # miniBatchSize
    embedding_size: int        # layer1Neurons, h1
    hidden_size: int           # layer2Neurons, h2
    epochs: int
    early_stop: int            # earlyStopIteration
    momentum: float
    learning_rate: float
    validation_period: int     # verifyPerIterBatch
    train_rows: int            # rawDataRow4Training
    valid_rows: int
    test_rows: int
    columns: int               # rawDataColumn, 4
    context_size: int          # inputDimension, D
    vocab_size: int            # V

    @classmethod
    def for_run(cls, config, vocab_size: int, rows: tuple[int, int, int],
                context_size: int = 3) -> "Header":
        """The header the C program writes for ``config`` on data of ``rows``
        (train, valid, test) rows."""
        return cls(config.batch_size, config.embedding_size, config.hidden_size, config.epochs,
                   config.early_stop, config.momentum, config.learning_rate,
                   config.validation_period, *rows, context_size + 1, context_size, vocab_size)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        h1, h2, D, V = self.embedding_size, self.hidden_size, self.context_size, self.vocab_size
        return {"W1": (h1, V), "W2": (h2, D * h1), "b2": (h2,), "W3": (V, h2), "b3": (V,)}

    def file_size(self) -> int:
        return HEADER.size + 8 * sum(math.prod(s) for s in self.shapes().values())

    def problems(self) -> list[str]:
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "float" and not math.isfinite(v):
                out.append(f"{f.name} is {v}")
        for name in ("batch_size", "embedding_size", "hidden_size", "context_size", "vocab_size"):
            v = getattr(self, name)
            if not 0 < v <= MAX_UNITS:
                out.append(f"{name} is {v}, not in 1..{MAX_UNITS}")
        return out


def save(path, header: Header, params: dict[str, np.ndarray]) -> None:
    """Write ``params`` (W1, W2, b2, W3, b3) under ``header``, atomically.

    Non-finite weights are refused: such a file could not be loaded again.
    """
    blobs = [HEADER.pack(*astuple(header))]
    for name, shape in header.shapes().items():
        a = np.asarray(params[name])
        if a.shape != shape:
            raise CheckpointError(f"{path}: {name} has shape {a.shape}, the header says {shape}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: not written, {name} holds NaN or infinite values")
        blobs.append(np.ascontiguousarray(a, dtype="<f8").tobytes())
    atomic_write(Path(path), b"".join(blobs))


def load(path, vocab_size: int | None = None) -> tuple[Header, dict[str, np.ndarray]]:
    """(header, params) from a C-format checkpoint, checking it whole first."""
    return parse(read(path), path, vocab_size)


def read(path) -> bytes:
    """The bytes of the checkpoint at ``path``: its header read and checked first, then
    exactly the size it implies.  Anything but a regular file is refused unread (a FIFO
    would block, /dev/zero never ends)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; regular files ignore it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            facts = os.fstat(fd)
            if stat.S_ISDIR(facts.st_mode):
                raise CheckpointError(f"{path}: is a folder, not a checkpoint")
            if not stat.S_ISREG(facts.st_mode):
                raise CheckpointError(f"{path}: not a regular file: not a checkpoint")
            os.set_blocking(fd, True)
            with open(fd, "rb", closefd=False) as f:
                size = _header(f.read(HEADER.size), path, facts.st_size).file_size()
                f.seek(0)
                blob = f.read(size)
                if len(blob) != size or f.read(1):
                    raise CheckpointError(f"{path}: changed while being read")
        finally:
            os.close(fd)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    return blob


def load_embedded(name: str) -> tuple[Header, dict[str, np.ndarray]]:
    """(header, params) of a checkpoint shipped with the package (wordnet.data.embedded)."""
    return parse(embedded.read_bytes(name), f"{name} (embedded)")


def parse(blob: bytes, origin, vocab_size: int | None = None
          ) -> tuple[Header, dict[str, np.ndarray]]:
    """(header, params) from a checkpoint's bytes; ``origin`` names it in messages."""
    path = origin                                  # messages name the file, or its origin
    header = _header(blob[:HEADER.size], path, len(blob))
    if vocab_size is not None and header.vocab_size != vocab_size:
        raise CheckpointError(f"{path}: vocabulary of {header.vocab_size} words, "
                              f"the data has {vocab_size}")
    params, offset = {}, HEADER.size
    for name, shape in header.shapes().items():
        n = math.prod(shape)
        a = np.frombuffer(blob, dtype="<f8", count=n, offset=offset).reshape(shape)
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
        params[name] = a.astype(np.float64)       # a native, writable copy
        offset += 8 * n
    return header, params


def _header(head: bytes, path, size: int) -> Header:
    """The header of a checkpoint of ``size`` bytes starting with ``head``, checked:
    plausible, and describing a file of that size."""
    if len(head) < HEADER.size:
        raise CheckpointError(f"{path}: {len(head)} bytes, shorter than the "
                              f"{HEADER.size}-byte header: not a WordNet checkpoint")
    header = Header(*HEADER.unpack_from(head))
    bad = header.problems()
    if bad:
        raise CheckpointError(f"{path}: implausible header: {'; '.join(bad)}")
    if size != header.file_size():
        raise CheckpointError(f"{path}: {size} bytes, but its header describes "
                              f"{header.file_size()} (truncated or not a WordNet checkpoint)")
    return header


def state_path(path) -> Path:
    """The side file that holds what the C format lacks to resume a run."""
    path = Path(path)
    return path.with_name(path.name + ".state.npz")


PARAMS = ("W1", "W2", "b2", "W3", "b3")
STATE_KEYS = {*(f"vel_{name}" for name in PARAMS), "position", "history", "model_sha256"}


def save_state(path, velocity: dict[str, np.ndarray], position: dict,
               history: dict) -> None:
    """Velocities, the run's position and its history beside checkpoint ``path``,
    atomically, after it: the state names the SHA-256 of the checkpoint it belongs to,
    so that a run killed between the two writes leaves a state that is refused."""
    buffer = io.BytesIO()
    np.savez(buffer, **{f"vel_{k}": velocity[k] for k in PARAMS},
             position=np.array(json.dumps(position)), history=np.array(json.dumps(history)),
             model_sha256=np.array(_sha256(path)))
    atomic_write(state_path(path), buffer.getvalue())


def load_state(path, shapes: dict[str, tuple[int, ...]]
               ) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(velocity, position, history) saved by save_state beside checkpoint ``path``,
    whose parameters have ``shapes``; refused unless it belongs to that checkpoint."""
    side = state_path(path)
    try:
        with np.load(side, allow_pickle=False) as f:
            keys = set(f.files)
            if keys != STATE_KEYS:
                raise CheckpointError(f"{side}: not a resume state: "
                                      f"{_key_problems(keys)}")
            velocity = {name: f[f"vel_{name}"] for name in PARAMS}
            position, history = json.loads(str(f["position"])), json.loads(str(f["history"]))
            digest = str(f["model_sha256"])
    except FileNotFoundError:
        raise CheckpointError(f"{side}: missing: there is nothing to resume") from None
    except EOFError:
        raise CheckpointError(f"{side}: empty: not a resume state") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{side}: not a resume state ({e})") from None
    if digest != _sha256(path):
        raise CheckpointError(f"{side}: belongs to another {Path(path).name} than the one "
                              "beside it (a run stopped between writing the two?): "
                              "cannot resume; run without --resume to start over")
    for name, shape in shapes.items():
        if velocity[name].shape != shape:
            raise CheckpointError(f"{side}: velocity of {name} has shape "
                                  f"{velocity[name].shape}, the model's is {shape}")
    if not isinstance(position, dict) or not isinstance(history, dict):
        raise CheckpointError(f"{side}: not a resume state (no position or history)")
    return velocity, position, history


def _key_problems(keys: set[str]) -> str:
    missing, extra = sorted(STATE_KEYS - keys), sorted(keys - STATE_KEYS)
    return "; ".join(([f"{', '.join(missing)} missing"] if missing else [])
                     + ([f"unexpected {', '.join(extra)}"] if extra else []))


def _sha256(path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None


# -- the window scorer's and skip-gram's checkpoints ------------------------------------
#
# A NumPy .npz archive (a zip of .npy files, readable by np.load without pickle):
# ``kind`` ("window" or "skipgram", a 0-d string array) and the model's parameters by
# name, float64: W1 (h1 x V) in both, column v the embedding of word v; the window
# scorer's W2 (h2 x (2k+1)·h1), b2 (h2), W3 (1 x h2), b3 (1); skip-gram's W2 (V x h1),
# the output vectors.  The 4-gram model keeps the C format above.

def save_npz(path, kind: str, params: dict[str, np.ndarray]) -> None:
    """``params`` of a model of ``kind``, atomically; non-finite values refused."""
    for name, a in params.items():
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: not written, {name} holds NaN or infinite values")
    buffer = io.BytesIO()
    np.savez(buffer, kind=np.array(kind),
             **{name: np.asarray(a, dtype="<f8") for name, a in params.items()})
    atomic_write(Path(path), buffer.getvalue())


def load_npz(path, kinds: dict) -> tuple[str, dict[str, np.ndarray]]:
    """(kind, params) of an .npz checkpoint; ``kinds`` maps each kind to its parameters'
    names.  CheckpointError names the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a model archive ({e})") from None
    kind = str(saved.pop("kind", ""))
    if kind not in kinds:
        raise CheckpointError(f"{path}: kind {kind!r} is none of {', '.join(kinds)}")
    if sorted(saved) != sorted(kinds[kind]):
        raise CheckpointError(f"{path}: a {kind} model holds {', '.join(kinds[kind])}, "
                              f"this file {', '.join(sorted(saved)) or 'nothing'}")
    for name, a in saved.items():
        if a.dtype != np.float64 or not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} is not finite float64 values")
    return kind, saved
