"""wordnet.fileio's careful reader: regular files only, their size bounded before reading."""
import os
import time

import pytest
from blocking import unblocking, within

from wordnet.errors import WordNetError
from wordnet.fileio import ReadError, read_bounded


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert read_bounded(path, 3, "thing") == b"abc"


def test_a_missing_file_is_the_callers_to_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "none", 10, "thing")


@pytest.mark.parametrize("make", ["fifo", "folder", "dev-zero", "link-to-dev-zero", "link-to-fifo"])
def test_anything_but_a_regular_file_is_refused_unread(tmp_path, make):
    path = tmp_path / "f"
    if make in ("fifo", "link-to-fifo"):
        os.mkfifo(tmp_path / "fifo")
    if make == "fifo":
        path = tmp_path / "fifo"
    elif make == "folder":
        path.mkdir()
    elif make == "dev-zero":
        path = "/dev/zero"
    elif make == "link-to-dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(tmp_path / "fifo")
    try:
        e = within(5, lambda: read_bounded(path, 1 << 20, "vocabulary"))
    finally:
        if make in ("fifo", "link-to-fifo"):
            unblocking(tmp_path / "fifo")
    assert isinstance(e, ReadError) and isinstance(e, WordNetError)
    what = "is a folder, not a vocabulary" if make == "folder" else "not a regular file"
    assert str(e).startswith(f"{path}: ") and what in str(e) and "\n" not in str(e)


def test_a_file_larger_than_its_bound_is_refused_before_reading(tmp_path):
    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.truncate(1 << 40)                     # sparse: a terabyte, nothing on disk
    started = time.monotonic()
    with pytest.raises(ReadError) as e:
        read_bounded(path, 1 << 20, "recipe")
    assert time.monotonic() - started < 1
    assert str(e.value) == (f"{path}: 1,048,576.0 MiB, more than a recipe can hold "
                            "(1.0 MiB at most): not read")


def test_the_callers_error_class_is_raised(tmp_path):
    class MyError(WordNetError):
        pass
    (tmp_path / "d").mkdir()
    with pytest.raises(MyError):
        read_bounded(tmp_path / "d", 10, "thing", MyError)


def test_atomic_create_makes_a_file_once_and_never_replaces_one(tmp_path):
    from wordnet.fileio import atomic_create, umask
    path = tmp_path / "store.db"
    assert atomic_create(path, b"first", 0o644) is True
    assert path.read_bytes() == b"first"
    assert path.stat().st_mode & 0o777 == 0o644 & ~umask()      # not mkstemp's 0600
    assert atomic_create(path, b"second", 0o644) is False         # made meanwhile: kept
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]   # no temporary left
