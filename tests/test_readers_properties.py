"""Property-based tests of every reader of a user's files (issue 21 item 7): the
vocabulary, the 4-gram CSV, the C checkpoint, the .npz model, the resume state, the
recipe TOML and the run folder's JSON files.  Valid and near-valid inputs (truncated,
of the wrong shapes, types or kinds, NaN and infinities, keys missing or extra, a
byte-order mark) are either accepted and read as written, or refused with the reader's
WordNetError in one line; no reader writes anything."""
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wordnet.data.dataset import DataError, Vocabulary, read_csv
from wordnet.errors import ConfigError, WordNetError
from wordnet.models import checkpoint
from wordnet.models.checkpoint import CheckpointError, Header
from wordnet.runs import recipes
from wordnet.runs.rundir import RunDir, RunFolderError

# READERS_EXAMPLES=1500 for a longer search (a minute); 40 keeps the file at seconds
FAST = settings(max_examples=int(os.environ.get("READERS_EXAMPLES", 40)), deadline=None)
BOM = b"\xef\xbb\xbf"


@contextmanager
def folder():
    """A fresh folder for one example (hypothesis runs many in one test)."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def snapshot(tmp: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(tmp.iterdir()) if p.is_file()}


def refused(e: BaseException, kind: type) -> None:
    """A refusal as documented: the reader's error, one line, naming something."""
    assert isinstance(e, kind) and isinstance(e, WordNetError), repr(e)
    assert str(e) and "\n" not in str(e), str(e)


@st.composite
def edited(draw, blob: bytes) -> bytes:
    """``blob`` as is, or cut, extended, with bytes changed, or behind a byte-order mark."""
    how = draw(st.sampled_from(["as is", "cut", "extend", "flip", "bom"]))
    if how == "cut":
        return blob[:draw(st.integers(0, max(0, len(blob) - 1)))]
    if how == "extend":
        return blob + draw(st.binary(min_size=1, max_size=16))
    if how == "flip" and blob:
        b = bytearray(blob)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    if how == "bom":
        return BOM + blob
    return blob


# -- the vocabulary -------------------------------------------------------------------

WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzé'-.0123456789"), min_size=1,
               max_size=8)


@FAST
@given(words=st.lists(WORD, min_size=1, max_size=30, unique=True), data=st.data())
def test_a_vocabulary_is_read_as_written_or_refused_in_one_line(words, data):
    written = "\n".join(words).encode() + data.draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    blob = data.draw(edited(written))
    with folder() as tmp:
        (tmp / "vocab.txt").write_bytes(blob)
        before = snapshot(tmp)
        try:
            vocab = Vocabulary.read(tmp / "vocab.txt")
        except WordNetError as e:
            refused(e, DataError)
            assert blob not in (written, BOM + written), "a valid vocabulary refused"
        else:
            if blob in (written, BOM + written):
                assert vocab.words == tuple(words)
            assert len(set(vocab.words)) == len(vocab.words)
            assert all(w and len(w.split()) == 1 and "\ufeff" not in w for w in vocab.words)
        assert snapshot(tmp) == before


# -- the 4-gram CSV files -------------------------------------------------------------

@FAST
@given(rows=st.lists(st.lists(st.integers(1, 20), min_size=4, max_size=4), min_size=1,
                     max_size=30), data=st.data())
def test_a_csv_is_read_as_written_or_refused_in_one_line(rows, data):
    written = "".join(",".join(map(str, r)) + "\n" for r in rows).encode()
    blob = data.draw(edited(written))
    vocab_size = data.draw(st.sampled_from([20, 10]))
    valid = blob == written and max(max(r) for r in rows) <= vocab_size
    with folder() as tmp:
        (tmp / "train_data.csv").write_bytes(blob)
        before = snapshot(tmp)
        try:
            got = read_csv(tmp / "train_data.csv", vocab_size)
        except WordNetError as e:
            refused(e, DataError)
            assert not valid, "a valid CSV refused"
        else:
            if valid:
                assert np.array_equal(got, np.asarray(rows) - 1)
            assert got.dtype == np.int32 and got.shape[1] == 4
            assert got.min() >= 0 and got.max() < vocab_size
        assert snapshot(tmp) == before


# -- the C checkpoint -----------------------------------------------------------------

@FAST
@given(sizes=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4),
                       st.integers(1, 9)), data=st.data())
def test_a_c_checkpoint_round_trips_or_is_refused_in_one_line(sizes, data):
    from wordnet.models.fourgram import FourGramConfig
    batch, h1, h2, V = sizes
    header = Header.for_run(FourGramConfig(batch_size=batch, embedding_size=h1,
                                           hidden_size=h2), V, (10, 4, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    params = {n: rng.standard_normal(s) for n, s in header.shapes().items()}
    with folder() as tmp:
        checkpoint.save(tmp / "model.bin", header, params)
        written = (tmp / "model.bin").read_bytes()
        blob = data.draw(edited(written))
        (tmp / "model.bin").write_bytes(blob)
        before = snapshot(tmp)
        try:
            got, loaded = checkpoint.load(tmp / "model.bin",
                                          data.draw(st.sampled_from([None, V, V + 1])))
        except WordNetError as e:
            refused(e, CheckpointError)
        else:
            assert got.file_size() == len(blob)
            if blob == written:
                assert got == header and all(np.array_equal(loaded[n], params[n]) for n in params)
            assert all(np.isfinite(a).all() for a in loaded.values())
        assert snapshot(tmp) == before


# -- the .npz model -------------------------------------------------------------------

KINDS = {"window": ("W1", "W2", "b2", "W3", "b3"), "skipgram": ("W1", "W2")}


def npz_params(kind, h1, h2, V, k):
    rng = np.random.default_rng(0)
    if kind == "skipgram":
        return {"W1": rng.standard_normal((h1, V)), "W2": rng.standard_normal((V, h1))}
    return {"W1": rng.standard_normal((h1, V)), "W2": rng.standard_normal((h2, (2 * k + 1) * h1)),
            "b2": rng.standard_normal(h2), "W3": rng.standard_normal((1, h2)),
            "b3": rng.standard_normal(1)}


ODD_VALUES = st.sampled_from([
    np.nan, np.inf, np.zeros(5), np.zeros((2, 2, 2)), np.zeros(3, dtype=np.float32),
    np.zeros(3, dtype=np.int64), np.array(["x", "y"]), np.array(1.5), np.zeros((0, 3)),
])


@FAST
@given(kind=st.sampled_from(sorted(KINDS)), sizes=st.tuples(
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 9), st.integers(1, 2)), data=st.data())
def test_an_npz_model_round_trips_or_is_refused_in_one_line(kind, sizes, data):
    h1, h2, V, k = sizes
    params = npz_params(kind, h1, h2, V, k)
    entries = {"kind": np.array(kind)} | params
    change = data.draw(st.sampled_from(["none", "value", "missing", "extra", "kind", "bytes"]))
    name = data.draw(st.sampled_from(sorted(entries)))
    if change == "value":
        odd = data.draw(ODD_VALUES)
        entries[name] = (np.full_like(params[name], odd) if np.isscalar(odd) and name != "kind"
                         else odd)
    elif change == "missing":
        del entries[name]
    elif change == "extra":
        entries["W9"] = np.zeros(2)
    elif change == "kind":
        entries["kind"] = np.array(data.draw(st.sampled_from(["window", "skipgram", "4gram", ""])))
    vocab_size = data.draw(st.sampled_from([None, V, V + 1]))
    with folder() as tmp:
        path = tmp / "model.npz"
        np.savez(path, **entries)
        if change == "bytes":
            path.write_bytes(data.draw(edited(path.read_bytes())))
        before = snapshot(tmp)
        try:
            got_kind, got = checkpoint.load_npz(path, KINDS, vocab_size)
        except WordNetError as e:
            refused(e, CheckpointError)
            assert not (change == "none" and vocab_size in (None, V)), "a valid model refused"
        else:
            shapes = {n: a.shape for n, a in got.items()}
            assert shapes == checkpoint.npz_shapes(got_kind, shapes)
            assert vocab_size in (None, shapes["W1"][1])
            assert all(a.dtype == np.float64 and np.isfinite(a).all() for a in got.values())
            if change == "none":
                assert got_kind == kind and all(np.array_equal(got[n], params[n]) for n in params)
        assert snapshot(tmp) == before


# -- the resume state -----------------------------------------------------------------

def tiny():
    from wordnet.models.fourgram import FourGramConfig
    return Header.for_run(FourGramConfig(batch_size=4, embedding_size=2, hidden_size=3), 5,
                          (10, 4, 4))


STATE_ODD = st.sampled_from([
    ("vel_W1", np.full((2, 5), np.nan)), ("vel_b3", np.full(5, np.inf)),
    ("vel_W2", np.full((3, 6), 1e308)), ("vel_W3", np.zeros((5, 4))),
    ("vel_b2", np.array(["a", "b", "c"])), ("vel_W1", np.zeros((2, 5), dtype=np.float32)),
    ("position", np.array("[")), ("position", np.array(3)), ("position", np.array("[1]")),
    ("history", np.array('{"train_ce": "x"}')), ("history", np.array('{"valid_ce": [[true, 1]]}')),
    ("history", np.zeros(2)), ("model_sha256", np.array("0" * 64)), ("extra", np.zeros(1)),
])


@FAST
@given(data=st.data())
def test_a_resume_state_round_trips_or_is_refused_in_one_line(data):
    header = tiny()
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    velocity = {n: rng.standard_normal(s) for n, s in header.shapes().items()}
    position = {"epoch": 0, "batch": data.draw(st.integers(0, 3))}
    history = {"train_ce": data.draw(st.lists(st.floats(0, 10), max_size=5)),
               "valid_ce": [[2, 4.5]]}
    change = data.draw(st.sampled_from(["none", "value", "missing", "bytes"]))
    with folder() as tmp:
        model = tmp / "model.bin"
        checkpoint.save(model, header, {n: np.zeros(s) for n, s in header.shapes().items()})
        checkpoint.save_state(model, velocity, position, history)
        side = checkpoint.state_path(model)
        if change in ("value", "missing"):
            with np.load(side) as f:
                entries = {k: f[k] for k in f.files}
            if change == "value":
                name, value = data.draw(STATE_ODD)
                entries[name] = value
            else:
                del entries[data.draw(st.sampled_from(sorted(entries)))]
            np.savez(side, **entries)
        elif change == "bytes":
            side.write_bytes(data.draw(edited(side.read_bytes())))
        before = snapshot(tmp)
        try:
            got_velocity, got_position, got_history = checkpoint.load_state(model, header.shapes())
        except WordNetError as e:
            refused(e, CheckpointError)
            assert change != "none", "a valid state refused"
        else:
            assert all(v.shape == header.shapes()[n] and np.isfinite(v).all()
                       for n, v in got_velocity.items())
            assert isinstance(got_position, dict) and isinstance(got_history, dict)
            if change == "none":
                assert (got_position, got_history) == (position, history)
                assert all(np.array_equal(got_velocity[n], velocity[n]) for n in velocity)
        assert snapshot(tmp) == before


# -- the recipe TOML ------------------------------------------------------------------

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else
                                            "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):                    # a TOML basic string
        return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\'
                             else c for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


ANY_VALUE = st.one_of(st.booleans(), st.integers(-3, 200), st.floats(allow_nan=True),
                      st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2))
CONFIG_VALUES = {"epochs": st.integers(1, 3), "batch_size": st.integers(1, 500),
                 "learning_rate": st.floats(0.01, 1), "momentum": st.floats(0, 0.99),
                 "hidden_size": st.integers(1, 300), "embedding_size": st.integers(1, 100)}


@FAST
@given(data=st.data())
def test_a_recipe_is_read_as_written_or_refused_in_one_line(data):
    strict = data.draw(st.booleans())         # every key and value as documented
    config = data.draw(st.fixed_dictionaries({}, optional=CONFIG_VALUES))
    description = data.draw(st.text(max_size=20))
    parity = data.draw(st.booleans())
    bound = data.draw(st.none() | st.floats(0.1, 10))
    top = {"description": description}
    reproduce = {"enforce_statistical_parity": parity} | ({} if bound is None else
                                                          {"max_test_ce": bound})
    if not strict:
        where = data.draw(st.sampled_from(["top", "config", "reproduce"]))
        key = data.draw(st.sampled_from(["description", "epochs", "enforce_statistical_parity",
                                         "max_test_ce", "max_tset_ce", "colour"]))
        value = data.draw(ANY_VALUE)
        {"top": top, "config": config, "reproduce": reproduce}[where][key] = value
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in top.items())
    text += "[config]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in config.items())
    text += "[reproduce]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in reproduce.items())
    blob = (BOM if data.draw(st.booleans()) else b"") + text.encode()
    with folder() as tmp:
        (tmp / "mine.toml").write_bytes(blob)
        before = snapshot(tmp)
        try:
            recipe = recipes.load_recipe(str(tmp / "mine.toml"))
        except WordNetError as e:
            refused(e, ConfigError)
            assert not strict, f"a valid recipe refused: {e}"
        else:
            assert isinstance(recipe.description, str)
            assert isinstance(recipe.enforce_statistical_parity, bool)
            assert recipe.max_test_ce is None or 0 < recipe.max_test_ce < math.inf
            if strict:
                assert (recipe.description, recipe.enforce_statistical_parity,
                        recipe.max_test_ce) == (description, parity, bound)
                assert all(getattr(recipe.config, k) == v for k, v in config.items())
        assert snapshot(tmp) == before


# -- the run folder's JSON files ------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
VALID = {
    "metrics.json": st.dictionaries(st.sampled_from(["valid/final_ce", "test/ce", "train/epochs"]),
                                    st.integers(0, 9) | FINITE),
    "history.json": st.fixed_dictionaries({
        "train_ce": st.lists(FINITE, max_size=5),
        "valid_ce": st.lists(st.tuples(st.integers(0, 99), FINITE).map(list), max_size=3)}),
    "run.json": st.fixed_dictionaries(
        {"status": st.sampled_from(["FINISHED", "FAILED"]), "recipe": st.text(max_size=5),
         "stages": st.lists(st.sampled_from(["train", "validate"])),
         "mlflow_run_id": st.none() | st.text(max_size=5), "finished": st.text(max_size=5)}),
}


@FAST
@given(name=st.sampled_from(sorted(VALID)), data=st.data())
def test_a_run_folders_json_is_read_as_written_or_refused_in_one_line(name, data):
    valid = data.draw(st.booleans())
    obj = data.draw(VALID[name] if valid else JSON)
    blob = json.dumps(obj).encode()
    if not valid:
        blob = data.draw(edited(blob))
    with folder() as tmp:
        (tmp / name).write_bytes(blob)
        before = snapshot(tmp)
        try:
            got = RunDir(tmp).read_json(name)
        except WordNetError as e:
            refused(e, RunFolderError)
            assert not valid, f"a valid {name} refused: {e}"
        else:
            assert isinstance(got, dict)
            if valid:
                assert got == obj
        assert snapshot(tmp) == before
        assert os.listdir(tmp) == [name]
