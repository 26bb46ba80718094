"""NumPy ``.npz`` archives read with care: a zip of ``.npy`` files, each member's header
(shape, type, order) read and checked before its data, and the data never more than
its header and the zip's directory say.  The checkpoints' readers
(:mod:`wordnet.models.checkpoint`) say what each member must be."""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from wordnet.errors import WordNetError
from wordnet.fileio import open_bounded


class Archive:
    """An .npz file (a zip of .npy files) read member by member, each member's .npy
    header checked (:meth:`expect`) before its data is read: a compressed archive of a
    few megabytes can claim gigabytes, which are never allocated.  CheckpointError,
    naming the file, for anything that is not as expected; FileNotFoundError passes."""

    def __init__(self, path, limit: int, what: str, error: type[WordNetError],
                 max_side: int):
        self.path, self.what, self.error_class, self.max_side = Path(path), what, error, max_side
        self.file = open_bounded(path, limit, what, error)
        try:
            if os.fstat(self.file.fileno()).st_size == 0:
                raise self.error(f"empty: not a {what}")
            self.zip = zipfile.ZipFile(self.file)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as e:
            self.file.close()
            if isinstance(e, WordNetError):
                raise
            raise self.error(f"not a {what} ({one_line(e)})") from None
        if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
            self.close()
            raise self.error(f"not a {what} (a member twice, or one that is not .npy)")
        self.members = [n[:-4] for n in names]
        self.headers: dict[str, tuple] = {}

    def error(self, message: str) -> WordNetError:
        return self.error_class(f"{self.path}: {message}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.zip.close() if hasattr(self, "zip") else None
        self.file.close()

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
        """(shape, dtype, offset of the data) of member ``name``, from its .npy header
        alone; Fortran order is refused (save_npz and save_state never write it)."""
        if name not in self.headers:
            info = self.zip.getinfo(f"{name}.npy")
            try:
                with self.zip.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise ValueError(f"format version {version}")
                    shape, fortran, dtype = read_header(member)
                    offset = member.tell()
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError,
                    SyntaxError, TypeError) as e:
                raise self.error(f"{name} is not a NumPy array ({one_line(e)})") from None
            if fortran:
                raise self.error(f"{name} is in Fortran order, not as written here")
            if dtype.hasobject:
                raise self.error(f"{name} holds Python objects, not numbers")
            size = offset + math.prod(shape) * dtype.itemsize
            if info.file_size != size:      # the zip directory bounds what is inflated
                raise self.error(f"{name}: {info.file_size:,} bytes, its header "
                                 f"describes {size:,} (truncated or not a {self.what})")
            self.headers[name] = shape, dtype, offset
        return self.headers[name]

    def expect(self, name: str, shape) -> tuple[int, ...]:
        """Member ``name``'s shape, checked: float64 of ``shape`` (a tuple), or of
        ``shape`` dimensions (an int) each 1..max_side."""
        found, dtype, _ = self.header(name)
        if dtype != np.dtype("<f8"):
            raise self.error(f"{name} holds {dtype}, not float64 values")
        if isinstance(shape, int):
            if len(found) != shape or not all(0 < n <= self.max_side for n in found):
                raise self.error(f"{name} has shape {found}: not a {shape}-D array of "
                                 f"1..{self.max_side} per side")
        elif found != shape:
            raise self.error(f"{name} has shape {found}, the model's is {shape}")
        return found

    def expect_text(self, name: str, chars: int) -> None:
        """Member ``name`` is one string of at most ``chars`` characters."""
        shape, dtype, _ = self.header(name)
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * chars:
            raise self.error(f"{name} is {dtype} of shape {shape}, not a string of at most "
                             f"{chars:,} characters")

    def read(self, name: str) -> np.ndarray:
        """Member ``name``'s array (its header checked first), native and writable."""
        shape, dtype, offset = self.header(name)
        try:
            with self.zip.open(f"{name}.npy") as member:
                member.read(offset)
                blob = member.read(math.prod(shape) * dtype.itemsize)
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError) as e:
            raise self.error(f"{name} cannot be read ({one_line(e)})") from None
        if len(blob) != math.prod(shape) * dtype.itemsize:
            raise self.error(f"{name} is truncated")
        return np.frombuffer(blob, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))

    def read_text(self, name: str) -> str:
        return str(self.read(name)[()])


def one_line(e: Exception) -> str:
    return " ".join(str(e).split())
