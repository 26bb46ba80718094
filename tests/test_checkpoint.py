"""The C checkpoint format: round trips, and every way a file can be wrong."""
import os
import struct
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wordnet.models import checkpoint
from wordnet.models.checkpoint import HEADER, CheckpointError, Header
from wordnet.models.fourgram import FourGramConfig


def tiny_header(**changes):
    h = Header.for_run(FourGramConfig(batch_size=4, embedding_size=2, hidden_size=3), 5, (10, 4, 4))
    return replace(h, **changes)


def tiny_params(header, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in header.shapes().items()}


@pytest.fixture
def saved(tmp_path):
    h = tiny_header()
    path = tmp_path / "model.bin"
    checkpoint.save(path, h, tiny_params(h))
    return path


def test_round_trip(tmp_path):
    h = tiny_header()
    params = tiny_params(h)
    checkpoint.save(tmp_path / "m.bin", h, params)
    h2, params2 = checkpoint.load(tmp_path / "m.bin")
    assert h2 == h
    for name in params:
        assert np.array_equal(params[name], params2[name])
    assert (tmp_path / "m.bin").stat().st_size == h.file_size()


def test_reference_size_and_layout():
    h = Header.for_run(FourGramConfig(), 250, (372_550, 46_568, 46_568))
    assert h.file_size() == 743_672
    assert HEADER.size == 72


def test_reference_checkpoints_round_trip_byte_for_byte(reference_file, tmp_path):
    for name in ("c_init.bin", "c_10_updates.bin", "c_full.bin"):
        h, params = checkpoint.load(reference_file(name), vocab_size=250)
        checkpoint.save(tmp_path / name, h, params)
        assert (tmp_path / name).read_bytes() == reference_file(name).read_bytes()


def assert_refused(path, match):
    before = sorted(os.listdir(path.parent))
    with pytest.raises(CheckpointError, match=match) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)
    assert sorted(os.listdir(path.parent)) == before          # nothing written


def test_truncated(saved):
    saved.write_bytes(saved.read_bytes()[:-8])
    assert_refused(saved, "truncated")


def test_shorter_than_header(saved):
    saved.write_bytes(saved.read_bytes()[:40])
    assert_refused(saved, "shorter than the 72-byte header")


def test_zero_length(saved):
    saved.write_bytes(b"")
    assert_refused(saved, "shorter")


def test_header_not_matching_size(saved):
    blob = bytearray(saved.read_bytes())
    struct.pack_into("<i", blob, 8, 4)                      # hidden size 3 -> 4
    saved.write_bytes(bytes(blob))
    assert_refused(saved, "header describes")


def test_overflowing_sizes(saved):
    blob = bytearray(saved.read_bytes())
    struct.pack_into("<i", blob, 4, 2**31 - 1)              # embedding size
    saved.write_bytes(bytes(blob))
    assert_refused(saved, "implausible header")


def test_non_finite_weights(saved):
    blob = bytearray(saved.read_bytes())
    struct.pack_into("<d", blob, HEADER.size + 8, float("nan"))
    saved.write_bytes(bytes(blob))
    assert_refused(saved, "NaN or infinite")


def test_wrong_vocabulary(saved):
    with pytest.raises(CheckpointError, match="vocabulary of 5 words, the data has 250"):
        checkpoint.load(saved, vocab_size=250)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        checkpoint.load(tmp_path / "nope.bin")


def test_longer_than_the_header_says(saved):
    with open(saved, "ab") as f:
        f.write(b"\0")
    assert_refused(saved, "header describes")


@pytest.mark.parametrize("make", ["fifo", "folder", "device"])
def test_only_a_regular_file_is_read(tmp_path, make):
    """A FIFO would block for a writer, /dev/zero never ends: refused unread, at once."""
    path = tmp_path / "model.bin"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(e.value) == (f"{path}: is a folder, not a checkpoint" if make == "folder"
                            else f"{path}: not a regular file: not a checkpoint")


SPARSE_BYTES = 20 * 2**30                 # sparse, no disk used; read whole, it took 20 GB


@pytest.mark.parametrize("header", ["valid", "zeros"])
def test_a_huge_file_is_refused_from_its_header(saved, header):
    """Nothing past the 72-byte header is read when the header or the size is wrong."""
    import tracemalloc
    if header == "zeros":
        saved.write_bytes(b"")
    os.truncate(saved, SPARSE_BYTES)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError,
                           match="header describes" if header == "valid" else "implausible"):
            checkpoint.load(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes allocated"


def test_failed_save_leaves_old_file_and_no_debris(saved):
    before = saved.read_bytes()
    h = tiny_header()
    params = tiny_params(h)
    params["W2"] = params["W2"][:, :1]
    with pytest.raises(CheckpointError, match="W2 has shape"):
        checkpoint.save(saved, h, params)
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edits_give_only_the_documented_error(tmp_path, data):
    saved = tmp_path / "model.bin"
    checkpoint.save(saved, tiny_header(), tiny_params(tiny_header()))
    blob = bytearray(saved.read_bytes())
    kind = data.draw(st.sampled_from(["flip", "cut", "extend", "random"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
    elif kind == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif kind == "extend":
        blob += data.draw(st.binary(min_size=1, max_size=64))
    else:
        blob = bytearray(data.draw(st.binary(max_size=2000)))
    saved.write_bytes(bytes(blob))
    try:
        header, params = checkpoint.load(saved)
    except CheckpointError:
        return
    assert saved.stat().st_size == header.file_size()
    assert all(np.isfinite(a).all() for a in params.values())


def test_npz_round_trip_and_refusals(tmp_path):
    kinds = {"skipgram": ("W1", "W2")}
    params = {"W1": np.arange(6.0).reshape(2, 3), "W2": np.ones((3, 2))}
    path = tmp_path / "model.npz"
    checkpoint.save_npz(path, "skipgram", params)
    kind, loaded = checkpoint.load_npz(path, kinds)
    assert kind == "skipgram" and all(np.array_equal(loaded[n], params[n]) for n in params)
    with pytest.raises(CheckpointError, match="kind 'skipgram' is none of window"):
        checkpoint.load_npz(path, {"window": ("W1",)})
    with pytest.raises(CheckpointError, match="holds W1, W2, b2"):
        checkpoint.load_npz(path, {"skipgram": ("W1", "W2", "b2")})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        checkpoint.save_npz(tmp_path / "bad.npz", "skipgram", {"W1": np.array([np.nan])})
    assert not (tmp_path / "bad.npz").exists()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a model archive"):
        checkpoint.load_npz(path, kinds)
