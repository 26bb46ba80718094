"""Data: both routes to the split, and every way a data file can be wrong."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wordnet.data import dataset as data
from wordnet.data.dataset import DataError, UnknownWordError, Vocabulary


def test_csv_split_sizes(dataset):
    assert len(dataset.vocab) == 250
    assert dataset.train.shape == (372_550, 4) and dataset.train.dtype == np.int32
    assert dataset.valid.shape == dataset.test.shape == (46_568, 4)
    assert dataset.train.min() == 0 and dataset.train.max() == 249


def test_raw_sentences_give_the_same_split(data_dir, dataset, tmp_path):
    for name in ("vocab.txt", "raw_sentences.txt"):
        shutil.copy(data_dir / name, tmp_path / name)
    rebuilt = data.load_dataset(tmp_path)
    for name in data.SPLITS:
        assert np.array_equal(rebuilt.split(name), dataset.split(name)), name
    assert rebuilt.unknown_words == 0


def test_words_outside_the_vocabulary_cut_the_sentence():
    vocab = Vocabulary(("a", "b", "c", "d"))
    tokens, unknown = data.tokenize("A b c d\na b zzz c d a b\nb c d a b\n", vocab)
    assert unknown == 1
    B = data.BREAK
    assert tokens.tolist() == [0, 1, 2, 3, B, 0, 1, B, 2, 3, 0, 1, B, 1, 2, 3, 0, 1, B]
    windows = np.lib.stride_tricks.sliding_window_view(tokens, 4)
    grams = windows[(windows != B).all(axis=1)].tolist()
    assert grams == [[0, 1, 2, 3], [2, 3, 0, 1], [1, 2, 3, 0], [2, 3, 0, 1]]


def test_the_split_keeps_file_order_and_never_crosses_a_sentence(monkeypatch):
    monkeypatch.setattr(data, "TRAIN_ROWS", 2)
    monkeypatch.setattr(data, "VALID_ROWS", 1)
    vocab = Vocabulary(("a", "b", "c", "d", "e"))
    tokens, _ = data.tokenize("a b c d e\nb c\nc d e a b\n", vocab)
    train, valid, test = data.split_ngrams(tokens)
    assert train.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4]]
    assert valid.tolist() == [[2, 3, 4, 0]] and test.tolist() == [[3, 4, 0, 1]]
    assert train.dtype == np.int32 and train.flags.c_contiguous


def test_the_embedded_data_is_the_published_split(dataset):
    from wordnet.data import embedded
    shipped = data.load_dataset()
    assert shipped.source is None and shipped.is_published()
    for split in data.SPLITS:       # the CSV files of the dataset fixture match upstream's pins
        assert np.array_equal(shipped.split(split), dataset.split(split))
        assert shipped.digest(split) == embedded.SPLIT_SHA256[split]
    assert shipped.files == {name: embedded.SHA256[name] for name in ("vocab.txt", "raw_sentences.txt")}


def test_data_lookup_order(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    assert data.find_data() is None                       # nothing here: the embedded copy
    (tmp_path / "data").mkdir()
    assert data.find_data() is None                       # an empty data/ is passed over
    for name in ("vocab.txt", "raw_sentences.txt"):
        shutil.copy(data_dir / name, tmp_path / "data" / name)
    assert data.find_data() == Path("data")
    monkeypatch.setenv(data.DATA_ENV, str(data_dir))
    assert data.find_data() == data_dir
    assert data.find_data(str(tmp_path / "data")) == tmp_path / "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match="no WordNet data there .--data-dir.*data fetch"):
        data.find_data(str(empty))
    monkeypatch.setenv(data.DATA_ENV, str(empty))
    with pytest.raises(data.DataError, match=f"no WordNet data there .{data.DATA_ENV}"):
        data.find_data()


def test_a_damaged_embedded_file_is_refused(monkeypatch):
    from wordnet.data import embedded
    monkeypatch.setitem(embedded.SHA256, "vocab.txt", "0" * 64)
    with pytest.raises(embedded.EmbeddedError, match="vocab.txt has SHA-256 .* not the pinned"):
        data.load_dataset()


def test_encode_suggests_close_words():
    vocab = Vocabulary(("time", "times", "game", "team"))
    assert vocab.encode(["team", "time"]).tolist() == [3, 0]
    with pytest.raises(UnknownWordError) as e:
        vocab.encode(["tme"])
    assert "'tme' is not in the vocabulary" in str(e.value) and "time" in e.value.suggestions


def write_folder(tmp_path, data_dir, bad_line):
    for name in ("vocab.txt", "valid_data.csv", "test_data.csv"):
        shutil.copy(data_dir / name, tmp_path / name)
    (tmp_path / "train_data.csv").write_text("1,2,3,4\n5,6,7,8\n" + bad_line + "\n9,10,11,12\n")
    return tmp_path / "train_data.csv"


@pytest.mark.parametrize("bad_line,message", [
    ("0,2,3,4", "word index 0 outside 1..250"),
    ("1,2,3,251", "word index 251 outside 1..250"),
    ("1,2,3", "expected 4 comma-separated word indices, got 3"),
    ("1,2,time,4", "'time' is not a word index"),
    ("", "got 1 field"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path, data_dir, bad_line, message):
    path = write_folder(tmp_path, data_dir, bad_line)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataError, match=message) as e:
        data.load_dataset(tmp_path)
    assert str(e.value).startswith(f"{path}:3: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_files_are_named(tmp_path, data_dir):
    with pytest.raises(DataError, match="vocab.txt: missing"):
        data.load_dataset(tmp_path)
    shutil.copy(data_dir / "vocab.txt", tmp_path / "vocab.txt")
    with pytest.raises(DataError, match="raw_sentences.txt: missing"):
        data.load_dataset(tmp_path)
    with pytest.raises(DataError, match="no such data folder"):
        data.load_dataset(tmp_path / "nowhere")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("0123456789,\n -x\t") | st.characters(), max_size=200))
def test_random_csv_gives_only_the_documented_error(tmp_path, text):
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        rows = data.read_csv(path, 250)
    except DataError as e:
        assert str(path) in str(e)
        return
    assert rows.ndim == 2 and rows.shape[1] == 4 and rows.min() >= 0 and rows.max() < 250


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300))
def test_random_vocabulary_bytes_give_only_the_documented_error(tmp_path, blob):
    (tmp_path / "vocab.txt").write_bytes(blob)
    try:
        vocab = Vocabulary.read(tmp_path / "vocab.txt")
    except DataError:
        return
    assert len(vocab) >= 1 and len(set(vocab.words)) == len(vocab)


# -- issue 21: every data file read carefully -----------------------------------------

def test_a_vocabulary_starting_with_a_byte_order_mark_is_read_without_it(tmp_path):
    """Issue 21 item 7: the mark renamed the first word (\\ufeffall)."""
    words = Vocabulary.embedded().words
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(words).encode())
    vocab = Vocabulary.read(path)
    assert vocab.words == words and vocab.encode(["all"])[0] == words.index("all")


@pytest.mark.parametrize("target", ["/dev/zero", "folder"])
def test_a_vocabulary_that_is_not_a_file_is_refused_unread(data_dir, tmp_path, target):
    """Issue 21 item 6: vocab.txt linked to /dev/zero read until MemoryError."""
    from blocking import within
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    (folder / "vocab.txt").unlink()
    if target == "folder":
        (folder / "vocab.txt").mkdir()
    else:
        (folder / "vocab.txt").symlink_to(target)
    for read in (lambda: Vocabulary.read(folder / "vocab.txt"),   # a run folder's, --data-dir's
                 lambda: data.load_dataset(folder)):
        e = within(5, read)
        assert isinstance(e, DataError) and "\n" not in str(e)
        assert str(e).startswith(f"{folder / 'vocab.txt'}: ")


def test_a_vocabulary_folder_in_data_is_an_error_not_the_shipped_one(data_dir, tmp_path,
                                                                      monkeypatch):
    """Issue 21 item 7: data/vocab.txt a folder (or FIFO) was skipped for the shipped
    vocabulary."""
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / "data" / "vocab.txt").unlink()
    (tmp_path / "data" / "vocab.txt").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    assert data.find_data() == Path("data")
    with pytest.raises(DataError, match="vocab.txt: is a folder, not a vocabulary"):
        data.load_dataset(data.find_data())


@pytest.mark.parametrize("make", ["folder", "fifo"])
def test_a_vocabulary_beside_a_model_that_is_not_a_file_is_an_error(tmp_path, make):
    """... and beside a model: the shipped vocabulary was taken instead."""
    import os

    from blocking import unblocking, within

    from wordnet.data import embedded
    from wordnet.models.predictor import Predictor
    from wordnet.runs.locate import model_files
    (tmp_path / "model.bin").write_bytes(embedded.read_bytes("model9-3000.bin"))
    beside = tmp_path / "vocab.txt"
    if make == "folder":
        beside.mkdir()
    else:
        os.mkfifo(beside)
    try:
        with model_files(str(tmp_path / "model.bin")) as (path, vocab):
            assert vocab == beside
            e = within(5, lambda: Predictor.load(path, vocab))
    finally:
        if make == "fifo":
            unblocking(beside)
    assert isinstance(e, DataError) and str(e).startswith(f"{beside}: ")


def test_a_csv_too_large_to_be_one_is_refused_before_reading(data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    monkeypatch.setattr(data, "TEXT_LIMIT", 1000)
    with pytest.raises(DataError, match="more than a 4-gram CSV file can hold"):
        data.load_dataset(folder)
