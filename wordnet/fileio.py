"""Writing files so that a crash never leaves one half-written, and reading a user's
files so that none can hang a command or exhaust its memory."""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from wordnet.errors import WordNetError

MiB = 1 << 20


class ReadError(WordNetError, ValueError):
    """A file is not one the command can read: not a regular file, larger than what it
    can sensibly hold, or unreadable; the message names the file (and the bound)."""


def open_bounded(path, limit: int, what: str, error: type[WordNetError] = ReadError):
    """``path`` opened for reading in binary, once known to be a regular file (a FIFO, a
    folder, a device or a link to one is refused without a blocking open) of at most
    ``limit`` bytes, what a ``what`` (e.g. "vocabulary") can sensibly hold.  ``error``
    (a WordNetError class) is raised, naming the file and the bound; FileNotFoundError
    is left to the caller."""
    path = Path(path)
    try:
        _check(path, os.stat(path), limit, what, error)
        # O_NONBLOCK: a FIFO swapped in meanwhile does not block the open; fstat decides
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        _check(path, os.fstat(fd), limit, what, error)
        os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path, limit: int, what: str, error: type[WordNetError] = ReadError) -> bytes:
    """The bytes of ``path``, checked as :func:`open_bounded` checks it, and read whole
    (never more than ``limit`` bytes, should it grow meanwhile)."""
    with open_bounded(path, limit, what, error) as f:
        try:
            # the size fstat gave (and a byte more, to see growth), not the bound: a
            # read(n) allocates n bytes before it reads any
            chunks = [f.read(os.fstat(f.fileno()).st_size + 1)]
            size = len(chunks[0])
            while size <= limit and (chunk := f.read(min(MiB, limit + 1 - size))):
                chunks.append(chunk)
                size += len(chunk)
        except OSError as e:
            raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if size > limit:
        raise error(f"{path}: grew past {_size(limit)} while being read: not a {what}")
    return b"".join(chunks) if len(chunks) > 1 else chunks[0]


def _check(path: Path, facts: os.stat_result, limit: int, what: str, error) -> None:
    mode = facts.st_mode
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):                    # a FIFO, a device, a socket
        raise error(f"{path}: not a regular file: not a {what}")
    if facts.st_size > limit:
        raise error(f"{path}: {_size(facts.st_size)}, more than a {what} can hold "
                    f"({_size(limit)} at most): not read")


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < MiB else f"{n / MiB:,.1f} MiB"


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``.

    A crash at any point, or a full disk, leaves either the old file or the new one,
    whole; an OSError names ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~umask())   # mkstemp's 0600 would hide it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:   # a full disk: name the file
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_create(path: Path, data: bytes, mode: int = 0o666) -> bool:
    """Create ``path`` holding ``data`` unless a file is there: written to a temporary
    file beside it and synced, then linked in under its name, which never replaces a
    file made there meanwhile.  Whether it made it; a crash leaves no half-written
    ``path``.  ``mode`` as os.open's, less the umask.  An OSError (e.g. a file system
    without hard links) names ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode & ~umask())
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=1) + "\n").encode())


def umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
