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
import struct
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from wordnet.data import embedded
from wordnet.errors import WordNetError
from wordnet.fileio import MiB, atomic_write, open_bounded
from wordnet.models.archive import Archive

# int32 x5, pad, float64 x2, int32 x7, pad
HEADER = struct.Struct("<5i4x2d7i4x")
MAX_UNITS = 1 << 20            # sanity bound on any one size in a header
MAX_FILE = 1 << 62             # no bound of its own: a C-format checkpoint is bounded by
                               # its header, checked against the file's size before reading


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
        (train, valid, test) rows; an early_stop beyond an epoch is the epoch's end."""
        early_stop = min(config.early_stop, rows[0] // config.batch_size)
        return cls(config.batch_size, config.embedding_size, config.hidden_size, config.epochs,
                   early_stop, config.momentum, config.learning_rate,
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
        with open_bounded(path, MAX_FILE, "checkpoint", CheckpointError) as f:
            size = _header(f.read(HEADER.size), path, os.fstat(f.fileno()).st_size).file_size()
            f.seek(0)
            blob = f.read(size)
            if len(blob) != size or f.read(1):
                raise CheckpointError(f"{path}: changed while being read")
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


MAX_VELOCITY = 1e12             # |velocity| in a resume state; beyond, it is not a run's
STATE_JSON_CHARS = 1 << 26      # the history's JSON, in characters (some 25 a CE)
POSITION_CHARS = 1 << 12


def load_state(path, shapes: dict[str, tuple[int, ...]]
               ) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(velocity, position, history) saved by save_state beside checkpoint ``path``,
    whose parameters have ``shapes``; refused unless it belongs to that checkpoint.
    Every array's header (shape, type) is checked against what the model expects
    before its data is read; velocities must be finite and at most MAX_VELOCITY."""
    side = state_path(path)
    expected = {f"vel_{name}": ("f", tuple(shape)) for name, shape in shapes.items()}
    expected |= {"position": ("U", POSITION_CHARS), "history": ("U", STATE_JSON_CHARS),
                 "model_sha256": ("U", 64)}
    limit = 8 * sum(math.prod(s) for s in shapes.values()) + 4 * STATE_JSON_CHARS + MiB
    try:
        with Archive(side, limit, "resume state", CheckpointError, MAX_UNITS) as archive:
            keys = set(archive.members)
            if keys != STATE_KEYS:
                raise CheckpointError(f"{side}: not a resume state: {_key_problems(keys)}")
            for name, (kind, size) in expected.items():
                if kind == "f":
                    archive.expect(name, size)
                else:
                    archive.expect_text(name, size)
            velocity = {name: archive.read(f"vel_{name}") for name in PARAMS}
            position, history, digest = (archive.read_text(n)
                                         for n in ("position", "history", "model_sha256"))
    except FileNotFoundError:
        raise CheckpointError(f"{side}: missing: there is nothing to resume") from None
    for name, v in velocity.items():
        if not np.isfinite(v).all() or np.abs(v).max(initial=0) > MAX_VELOCITY:
            raise CheckpointError(f"{side}: velocity of {name} holds NaN, infinite or "
                                  f"implausible values (beyond {MAX_VELOCITY:g}): "
                                  "not a run's state")
    if digest != _sha256(path):
        raise CheckpointError(f"{side}: belongs to another {Path(path).name} than the one "
                              "beside it (a run stopped between writing the two?): "
                              "cannot resume; run without --resume to start over")
    try:
        position, history = json.loads(position), json.loads(history)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{side}: not a resume state (its position or history is "
                              "not JSON)") from None
    if not isinstance(position, dict) or not isinstance(history, dict):
        raise CheckpointError(f"{side}: not a resume state (no position or history)")
    problem = _history_problem(history)
    if problem:
        raise CheckpointError(f"{side}: not a resume state ({problem})")
    return velocity, position, history


def _history_problem(history: dict) -> str | None:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    train, valid = history.get("train_ce", []), history.get("valid_ce", [])
    if not isinstance(train, list) or not all(number(v) for v in train):
        return "its train_ce is not a list of numbers"
    if not isinstance(valid, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)
            and not isinstance(p[0], bool) and number(p[1]) for p in valid):
        return "its valid_ce is not a list of [iteration, CE] pairs"
    return None


def _key_problems(keys: set[str]) -> str:
    missing, extra = sorted(STATE_KEYS - keys), sorted(keys - STATE_KEYS)
    return "; ".join(([f"{', '.join(missing)} missing"] if missing else [])
                     + ([f"unexpected {', '.join(extra)}"] if extra else []))


def _sha256(path) -> str:
    return hashlib.sha256(read(path)).hexdigest()


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


MAX_NPZ_BYTES = 1 << 31       # of an .npz model's parameters, uncompressed


def npz_shapes(kind: str, found: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The shapes a ``kind`` model's parameters must have, given those ``found`` (W1's
    and W2's decide): what the kind's class declares (``Layers.saved_shapes``); a
    kind not registered, those found.  ValueError says why none fit."""
    from wordnet.models import registry  # the kinds' modules come after this one
    kind_of = registry.KINDS.get(kind)
    return kind_of.model.saved_shapes(found) if kind_of else dict(found)


def load_npz(path, kinds: dict, vocab_size: int | None = None
             ) -> tuple[str, dict[str, np.ndarray]]:
    """(kind, params) of an .npz checkpoint; ``kinds`` maps each kind to its parameters'
    names; W1 has ``vocab_size`` columns when given.  Every array's header (shape,
    type) is checked against what the kind expects before any data is read: a few
    compressed megabytes claiming gigabytes are refused unread.  CheckpointError
    names the file and what is wrong with it."""
    try:
        with Archive(path, MAX_NPZ_BYTES + MiB, "model archive", CheckpointError,
                     MAX_UNITS) as archive:
            names = set(archive.members)
            if "kind" not in names:
                raise archive.error("not a model archive (no kind)")
            archive.expect_text("kind", 64)
            kind = archive.read_text("kind")
            if kind not in kinds:
                raise archive.error(f"kind {kind!r} is none of {', '.join(kinds)}")
            params = names - {"kind"}
            if sorted(params) != sorted(kinds[kind]):
                raise archive.error(f"a {kind} model holds {', '.join(kinds[kind])}, "
                                    f"this file {', '.join(sorted(params)) or 'nothing'}")
            w1 = archive.header("W1")[0]
            if len(w1) != 2:
                raise archive.error(f"W1 has shape {w1}: not a matrix "
                                    "(embedding size x vocabulary)")
            if vocab_size is not None and w1[1] != vocab_size:
                raise archive.error(f"vocabulary of {w1[1]} words (W1's columns), "
                                    f"the data has {vocab_size}")
            found = {name: archive.expect(name, len(archive.header(name)[0]) or 1)
                     for name in kinds[kind]}
            if len(found.get("W2", (0, 0))) != 2:
                raise archive.error(f"W2 has shape {found['W2']}: not a matrix")
            try:
                expected = npz_shapes(kind, found)
            except ValueError as e:
                raise archive.error(str(e)) from None
            for name, shape in expected.items():
                archive.expect(name, shape)
            total = 8 * sum(math.prod(shape) for shape in found.values())
            if total > MAX_NPZ_BYTES:
                raise archive.error(f"its parameters would take {total / MiB:,.0f} MiB, "
                                    f"more than a model may ({MAX_NPZ_BYTES / MiB:,.0f}): "
                                    "not read")
            saved = {name: archive.read(name) for name in kinds[kind]}
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: not a model archive ({e.strerror})") from None
    for name, a in saved.items():
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} is not finite float64 values")
    return kind, saved
