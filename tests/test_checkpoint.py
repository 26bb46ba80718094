"""The C checkpoint format: round trips, and every way a file can be wrong."""
import hashlib
import io
import math
import os
import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path

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


# -- .npz archives: every member's header checked before its data is read ----------------

def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def zeros_member(shape) -> tuple[bytes, int]:
    """(raw deflate stream, uncompressed size) of an .npy file of float64 zeros of
    ``shape``, made without ever holding the zeros: after a full flush, deflate gives
    the same bytes for each MiB of zeros (1,037 of them), so gigabytes take megabytes
    and milliseconds."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                                "shape": tuple(shape)})
    head = head.getvalue()
    zeros = 8 * math.prod(shape)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    mib, rest = divmod(zeros, 1 << 20)
    if mib:
        parts.append((c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)) * mib)
    parts.append(c.compress(bytes(rest)) + c.flush())
    return b"".join(parts), len(head) + zeros


def write_zip(path, members: dict) -> None:
    """A zip (zip64 sizes) of ``members``: name -> bytes (stored) or (deflate stream,
    size) (deflated, CRC left 0: a reader stops long before the end, where it is
    checked)."""
    out, central = bytearray(), bytearray()
    for name, member in members.items():
        data, size, method, crc = ((member, len(member), 0, zlib.crc32(member))
                                   if isinstance(member, bytes) else (*member, 8, 0))
        offset, n = len(out), name.encode()
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra)) + n + extra + data
        extra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21,
                               crc, 0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra), 0, 0, 0, 0,
                               0xFFFFFFFF) + n + extra
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                                 len(central), start, 0)
    Path(path).write_bytes(bytes(out))


def refused_quickly(call, match):
    """``call()`` raises a one-line CheckpointError matching ``match`` within 0.5 s,
    having allocated under 16 MB; the time it took."""
    import tracemalloc
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(CheckpointError, match=match) as e:
            call()
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value)
    assert took < 0.5 and peak < 16e6, (took, peak)
    return took


BOMB_SHAPE = (250, 4_000_000)                 # 7.45 GiB of float64


def test_an_npz_bomb_is_refused_from_its_header_without_allocating(tmp_path):
    """Issue 21 item 3: a 7.9 MB model.npz whose W1 claims (250, 4,000,000) made
    `nearest` allocate 7.45 GiB (unexpected MemoryError)."""
    from wordnet.data.dataset import Vocabulary
    from wordnet.models import registry
    from wordnet.models.predictor import Embeddings
    path = tmp_path / "model.npz"
    write_zip(path, {"kind.npy": npy_bytes(np.array("skipgram")),
                     "W1.npy": zeros_member(BOMB_SHAPE), "W2.npy": npy_bytes(np.zeros((4, 250)))})
    assert 7e6 < path.stat().st_size < 9e6
    kinds = registry.checkpoint_kinds("model.npz")
    vocab = tmp_path / "vocab.txt"                 # the shipped one, 250 words (read from
    vocab.write_text("\n".join(Vocabulary.embedded().words))   # its .xz, 64 MiB, beforehand)
    took = refused_quickly(lambda: Embeddings.load(path, vocab), "vocabulary of 4000000 words")
    print(f"npz bomb refused in {took * 1000:.1f} ms")
    refused_quickly(lambda: checkpoint.load_npz(path, kinds), r"W1 has shape \(250, 4000000\)")


def test_an_npz_within_each_dimension_but_too_large_in_all_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    write_zip(path, {"kind.npy": npy_bytes(np.array("skipgram")),
                     "W1.npy": zeros_member((1000, 1_000_000)),
                     "W2.npy": zeros_member((1_000_000, 1000))})
    refused_quickly(lambda: checkpoint.load_npz(path, {"skipgram": ("W1", "W2")}),
                    "more than a model may")


def test_a_state_bomb_is_refused_from_its_header(saved):
    """The same in model.bin.state.npz under `run --resume`."""
    header = tiny_header()
    shapes = header.shapes()
    members = {f"vel_{n}.npy": npy_bytes(np.zeros(s)) for n, s in shapes.items()}
    members["vel_W1.npy"] = zeros_member(BOMB_SHAPE)
    for name, text in (("position", "{}"), ("history", "{}"),
                       ("model_sha256", hashlib.sha256(saved.read_bytes()).hexdigest())):
        members[f"{name}.npy"] = npy_bytes(np.array(text))
    write_zip(checkpoint.state_path(saved), members)
    refused_quickly(lambda: checkpoint.load_state(saved, shapes),
                    r"vel_W1 has shape \(250, 4000000\), the model's is \(2, 5\)")


def window_params(V=250, h1=2, h2=3, k=1):
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((h1, V)), "W2": rng.standard_normal((h2, (2 * k + 1) * h1)),
            "b2": np.zeros(h2), "W3": rng.standard_normal((1, h2)), "b3": np.zeros(1)}


@pytest.mark.parametrize("change, match", [
    ({"b3": np.zeros(5)}, r"b3 has shape \(5,\), the model's is \(1,\)"),
    ({"W1": np.zeros(250)}, r"W1 has shape \(250,\): not a matrix"),
    ({"W1": np.zeros((2, 300))}, "vocabulary of 300 words"),
    ({"W2": np.zeros((3, 4))}, "not an odd window"),
    ({"W3": np.zeros((2, 3))}, r"W3 has shape \(2, 3\), the model's is \(1, 3\)"),
    ({"b2": np.zeros((3, 1))}, r"b2 has shape \(3, 1\)"),
    ({"b3": np.zeros(1, dtype=np.float32)}, "b3 holds float32, not float64"),
    ({"b3": np.array(["x"])}, "b3 holds <U1, not float64"),
    ({"b3": np.asfortranarray(np.zeros((1, 1)))[0]}, None),   # 1-D: C order all the same
])
def test_an_npz_of_shapes_that_do_not_fit_is_refused(tmp_path, change, match):
    """Issue 21 item 7: a (5,) b3 or a 300-column W1 for 250 words was evaluated
    (accuracy 0); a 1-D W1 ended in `unexpected ...`."""
    path = tmp_path / "model.npz"
    params = window_params() | change
    np.savez(path, kind=np.array("window"), **params)
    kinds = {"window": ("W1", "W2", "b2", "W3", "b3")}
    if match is None:
        assert checkpoint.load_npz(path, kinds, 250)[0] == "window"
        return
    with pytest.raises(CheckpointError, match=match) as e:
        checkpoint.load_npz(path, kinds, 250)
    assert "\n" not in str(e.value)


def test_an_npz_in_fortran_order_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, kind=np.array("skipgram"), W1=np.asfortranarray(np.ones((2, 3))),
             W2=np.ones((3, 2)))
    with pytest.raises(CheckpointError, match="W1 is in Fortran order"):
        checkpoint.load_npz(path, {"skipgram": ("W1", "W2")})


def state_of(saved, **changes):
    header = tiny_header()
    velocity = {n: np.zeros(s) for n, s in header.shapes().items()}
    checkpoint.save_state(saved, velocity, {"epoch": 0}, {"train_ce": [1.0], "valid_ce": []})
    side = checkpoint.state_path(saved)
    with np.load(side) as f:
        entries = {k: f[k] for k in f.files}
    np.savez(side, **(entries | changes))
    return header.shapes()


@pytest.mark.parametrize("change, match", [
    ({"vel_W2": np.full((3, 6), np.nan)}, "velocity of W2 holds NaN"),
    ({"vel_b3": np.full(5, 1e308)}, "velocity of b3 holds NaN, infinite or implausible"),
    ({"vel_W1": np.full((2, 5), "x")}, "vel_W1 holds <U1, not float64"),
    ({"position": np.array(5)}, "position is int64 of shape"),
    ({"history": np.array("[1, 2]")}, "no position or history"),
    ({"history": np.array('{"train_ce": ["a"]}')}, "train_ce is not a list of numbers"),
    ({"history": np.array('{"valid_ce": [[1.5, 2]]}')}, "valid_ce is not a list of"),
    ({"history": np.array("{")}, "not JSON"),
])
def test_a_resume_state_of_bad_values_is_refused(saved, change, match):
    """Issue 21 item 7: NaN or 1e308 velocities were accepted; a velocity of strings
    ended in `unexpected ...`."""
    shapes = state_of(saved, **change)
    with pytest.raises(CheckpointError, match=match) as e:
        checkpoint.load_state(saved, shapes)
    assert "\n" not in str(e.value)


def test_a_fifo_as_the_resume_state_is_refused_unread(saved):
    """Issue 21 item 6: a FIFO as model.bin.state.npz hung `run --resume`."""
    from blocking import unblocking, within
    side = checkpoint.state_path(saved)
    os.mkfifo(side)
    try:
        e = within(5, lambda: checkpoint.load_state(saved, tiny_header().shapes()))
    finally:
        unblocking(side)
    assert isinstance(e, CheckpointError) and "not a regular file" in str(e)


def test_a_state_round_trips(saved):
    shapes = state_of(saved)
    velocity, position, history = checkpoint.load_state(saved, shapes)
    assert position == {"epoch": 0} and history == {"train_ce": [1.0], "valid_ce": []}
    assert all(v.shape == shapes[n] and v.flags.writeable for n, v in velocity.items())
