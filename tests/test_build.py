"""`wordnet-pipeline data build`: a user's text made a data folder (wordnet/data/build.py,
text.py, folder.py), and every model trained on it."""
import fcntl
import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.data import build as builder
from wordnet.data import folder, text
from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import BREAK, UNK, DataError, load_dataset, sha256

SPLIT_FILES = {f"{s}_{kind}.npy" for s in ("train", "valid", "test")
               for kind in ("tokens", "4grams")}


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def sentences_text(data_dir, tmp_path_factory) -> Path:
    """The first 3,000 lines of the course's sentences, as a user's text file."""
    lines = (data_dir / "raw_sentences.txt").read_text().splitlines()[:3000]
    path = tmp_path_factory.mktemp("text") / "mine.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def built(sentences_text, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "data"
    builder.build([str(sentences_text)], out, vocab_size=120, min_count=3)
    return out


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".building-" in p.name]


# -- the rule -------------------------------------------------------------------------

def test_words_are_runs_of_letters_and_each_mark_a_token():
    assert text.tokens("Don't stop -- it's 5 O\u2019Clock... \"Yes!?\"") == [
        "don't", "stop", "--", "it's", "5", "o\u2019clock", "...", '"', "yes", "!", "?", '"']
    assert text.tokens("Café au lait", lowercase=False) == ["Café", "au", "lait"]


def test_running_text_is_cut_after_sentence_marks_and_at_blank_lines(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text('He said "no." Then he left!\nIt went on\nand on...\n\nA new one')
    found = list(text.sentences(text.Source(str(path)), "text"))
    assert found == [["he", "said", '"', "no", ".", '"'], ["then", "he", "left", "!"],
                     ["it", "went", "on", "and", "on", "..."], ["a", "new", "one"]]
    assert [len(s) for s in text.sentences(text.Source(str(path)), "lines")] == [10, 3, 3, 3]


def test_a_sentence_longer_than_the_bound_is_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_SENTENCE", 4)
    path = tmp_path / "t.txt"
    path.write_text("a b c d e f g h i j\n")
    assert [len(s) for s in text.sentences(text.Source(str(path)), "text")] == [4, 4, 2]
    assert [len(s) for s in text.sentences(text.Source(str(path)), "lines")] == [4, 4, 2]


def test_a_line_longer_than_the_bound_is_read_in_pieces_cut_at_white_space(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(text, "MAX_LINE", 16)
    path = tmp_path / "t.txt"
    path.write_text("abc def ghi jkl mno pqr stu vwx\n" + "\u00e9" * 20 + "\nend\n")
    pieces = list(text.Source(str(path)).lines())
    assert [n for n, _ in pieces] == [1, 1, 2, 2, 2, 3]
    assert " ".join(line for n, line in pieces if n == 1) == "abc def ghi jkl mno pqr stu vwx"
    assert "".join(line for n, line in pieces if n == 2) == "\u00e9" * 20  # no character cut
    assert max(len(line.encode()) for _, line in pieces) <= 16


# -- the folder -----------------------------------------------------------------------

def test_the_folder_holds_the_vocabulary_the_splits_and_a_manifest(built, sentences_text):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["format"] == folder.FORMAT
    [source] = manifest["sources"]
    assert source["path"] == str(sentences_text.resolve())
    assert source["sha256"] == sha256(sentences_text)
    assert manifest["settings"] | {"shares": None} == {
        "vocab_size": 120, "min_count": 3, "lowercase": True, "sentences": "lines", "seed": 0,
        "shares": None}
    assert set(manifest["files"]) == SPLIT_FILES | {"vocab.txt", "counts.tsv"}
    for name, digest in manifest["files"].items():
        assert sha256(built / name) == digest
    words = (built / "vocab.txt").read_text().split("\n")[:-1]
    assert words[0] == UNK and len(words) == manifest["counts"]["vocabulary"] == 120
    counts = [line.split("\t") for line in (built / "counts.tsv").read_text().splitlines()]
    assert [w for w, _ in counts] == words
    frequencies = [int(c) for _, c in counts[1:]]
    assert frequencies == sorted(frequencies, reverse=True) and min(frequencies) >= 3
    splits = manifest["counts"]["splits"]
    assert sum(s["sentences"] for s in splits.values()) == 3000
    assert 0.75 < splits["train"]["sentences"] / 3000 < 0.85


def test_the_counts_are_the_training_splits_and_the_4grams_its_windows(built):
    data = load_dataset(built)
    corpus = load_corpus(data.vocab, built)
    train = np.asarray(corpus.train)
    counts = dict(line.split("\t") for line in (built / "counts.tsv").read_text().splitlines())
    found = np.bincount(train[train != BREAK], minlength=len(data.vocab))
    assert [int(counts[w]) for w in data.vocab.words] == found.tolist()
    windows = np.lib.stride_tricks.sliding_window_view(train, 4)
    assert np.array_equal(data.train, windows[(windows != BREAK).all(axis=1)])
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["counts"]["splits"]["train"]["unknown"] == found[0] > 0
    assert isinstance(data.train, np.memmap) and isinstance(corpus.train, np.memmap)


def test_the_split_is_seeded_and_does_not_depend_on_how_the_text_is_read(sentences_text, built,
                                                                         tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "BATCH", 7)              # sentences a draw at a time
    monkeypatch.setattr(builder, "FLUSH", 50)
    monkeypatch.setattr(builder, "CHUNK", 101)            # 4-grams across the chunks' seams
    compressed = tmp_path / "mine.txt.xz"
    compressed.write_bytes(lzma.compress(sentences_text.read_bytes()))
    builder.build([str(compressed)], tmp_path / "again", vocab_size=120, min_count=3)
    for name in SPLIT_FILES | {"vocab.txt", "counts.tsv"}:
        assert (tmp_path / "again" / name).read_bytes() == (built / name).read_bytes(), name
    builder.build([str(sentences_text)], tmp_path / "other", vocab_size=120, min_count=3, seed=1)
    assert (tmp_path / "other" / "test_4grams.npy").read_bytes() != \
        (built / "test_4grams.npy").read_bytes()


def test_gzip_and_standard_input_read_the_same_text(sentences_text, built, tmp_path):
    zipped = tmp_path / "mine.txt.gz"
    zipped.write_bytes(gzip.compress(sentences_text.read_bytes()))
    assert invoke("data", "build", zipped, "--out", tmp_path / "gz", "--vocab-size", 120,
                  "--min-count", 3).exit_code == 0
    piped = invoke("data", "build", "-", "--out", tmp_path / "stdin", "--vocab-size", 120,
                   "--min-count", 3, input=sentences_text.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert "built" in piped.stdout and "wordnet-pipeline run --data-dir" in piped.stdout
    for name in SPLIT_FILES:
        assert (tmp_path / "gz" / name).read_bytes() == (built / name).read_bytes()
        assert (tmp_path / "stdin" / name).read_bytes() == (built / name).read_bytes()
    manifest = json.loads((tmp_path / "stdin" / "manifest.json").read_text())
    assert manifest["sources"][0]["path"] == "-"
    assert manifest["sources"][0]["sha256"] == sha256(sentences_text)
    assert "stdin.txt" not in {p.name for p in (tmp_path / "stdin").iterdir()}


# -- what is refused ------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"fine words here\nand \xff\xfe there\n", r"bad.txt:2: not UTF-8 text \(byte 0xff"),
    (b"ELF\x00\x01\x02 binary\n", r"bad.txt:1: a NUL byte: a binary file, not text"),
    (b"", r"bad.txt: no words in it"),
    (b"  \n\n\t\n", r"bad.txt: no words in it"),
    (b"word\n" * 50, r"bad.txt: 1 distinct word\(s\) in its training split: a vocabulary needs 2"),
    (b"a b c d\n", r"the (valid|test) split has no 4-gram"),
])
def test_bad_text_is_one_line_naming_the_file_and_leaves_no_folder(tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    result = invoke("data", "build", bad, "--out", tmp_path / "out", "--min-count", 1)
    assert result.exit_code != 0 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("Error: ") and __import__("re").search(message, line), line
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_what_min_count_leaves_and_a_repeated_stdin_are_refused(tmp_path):
    (tmp_path / "once.txt").write_text("\n".join(f"word{i} other{i} more{i} again{i}"
                                                for i in range(200)))
    result = invoke("data", "build", tmp_path / "once.txt", "--out", tmp_path / "out")
    assert result.exit_code != 0 and "no word appears 5 times in its training split" in \
        result.stderr
    result = invoke("data", "build", "-", "-", "--out", tmp_path / "out", input="a b c d\n")
    assert result.exit_code != 0 and "standard input) given twice" in result.stderr
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_a_split_of_a_few_short_sentences_is_refused_by_name_at_any_seed(tmp_path):
    """A split whose text is one or two words has no 4-gram: said, whatever the draw."""
    (tmp_path / "short.txt").write_text("\n".join(["a b c d e f g"] * 8 + ["a b", "c"]) + "\n")
    for seed in range(20):
        result = invoke("data", "build", tmp_path / "short.txt", "--out", tmp_path / f"o{seed}",
                        "--min-count", 1, "--seed", seed)
        assert result.exit_code == 0 or "split has no 4-gram" in result.stderr, result.output
        assert "Traceback" not in result.output and "unexpected" not in result.stderr


def test_a_corrupt_compressed_file_and_a_missing_one_are_named(tmp_path):
    (tmp_path / "broken.txt.gz").write_bytes(gzip.compress(b"some words\n" * 100)[:-20])
    result = invoke("data", "build", tmp_path / "broken.txt.gz", "--out", tmp_path / "out")
    assert result.exit_code != 0
    assert "broken.txt.gz: not a readable compressed file" in result.stderr
    result = invoke("data", "build", tmp_path / "nowhere.txt", "--out", tmp_path / "out")
    assert result.exit_code != 0 and "nowhere.txt: no such file" in result.stderr
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_an_existing_folder_is_never_replaced(sentences_text, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine").write_text("keep me")
    result = invoke("data", "build", sentences_text, "--out", out)
    assert result.exit_code != 0 and "exists: choose a new folder" in result.stderr
    assert (out / "mine").read_text() == "keep me" and not leftovers(tmp_path)


def test_an_interrupted_build_leaves_nothing(sentences_text, tmp_path):
    class Interrupting:
        def __init__(self, total, label):
            self.label = label

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            if self.label == "writing":
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        builder.build([str(sentences_text)], tmp_path / "out", vocab_size=50,
                      progress=Interrupting)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_a_killed_builds_folder_is_removed_by_the_next_build_not_a_running_ones(
        sentences_text, tmp_path):
    """SIGKILL runs no `finally`: the killed build's temporary folder stays, and the next
    build of the same --out removes it; one that a live build holds (its lock) stays."""
    big = tmp_path / "big.txt"
    big.write_bytes(sentences_text.read_bytes() * 200)             # seconds of building
    out = tmp_path / "out"
    script = Path(sys.executable).with_name("wordnet-pipeline")     # the installed command
    build = subprocess.Popen([script, "data", "build", big, "--out", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.glob("*.scratch") for p in tmp_path.glob(".out.building-*")):
        if build.poll() is not None or time.monotonic() > deadline:
            build.kill()
            pytest.fail(f"no build under way: {build.communicate()[1]}")
        time.sleep(0.05)
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=30)
    [killed] = tmp_path.glob(".out.building-*")
    running = tmp_path / ".out.building-running"                  # a live build's
    running.mkdir()
    os.utime(killed, (time.time() - 60,) * 2)                     # found a minute later
    os.utime(running, (time.time() - 60,) * 2)
    held = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = invoke("data", "build", sentences_text, "--out", out, "--vocab-size", 50)
        assert result.exit_code == 0, result.output
        assert f"removed {killed}/, left by a build of {out} that was killed" in result.stderr
        assert not killed.exists() and running.is_dir()
    finally:
        os.close(held)
    assert load_dataset(out).vocab.words[0] == UNK


def test_a_damaged_array_is_refused_before_a_model_reads_it(built, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    rows = np.load(copy / "valid_4grams.npy")
    rows[3, 2] = 120                                      # one past the vocabulary
    np.save(copy / "valid_4grams.npy", rows)
    with pytest.raises(DataError, match="valid_4grams.npy: a word number outside the vocabulary"):
        load_dataset(copy)
    np.save(copy / "valid_4grams.npy", rows.astype(np.float64))
    with pytest.raises(DataError, match="expected a non-empty int32 array"):
        load_dataset(copy)
    (copy / "valid_4grams.npy").unlink()
    with pytest.raises(DataError, match="valid_4grams.npy: missing"):
        load_dataset(copy)


# -- every model on it ----------------------------------------------------------------

@pytest.mark.parametrize("recipe", ["quick", "window", "skipgram", "skipgram-neg"])
def test_every_model_trains_on_a_built_folder(built, tmp_path, recipe):
    out = tmp_path / "run"
    result = invoke("run", "--data-dir", built, "--pipeline", recipe, "--no-tracking",
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert f"over 120 words ({built}/)" in result.stdout
    assert "reproduce: nothing to compare" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(np.isfinite(v) for v in metrics.values())
    if recipe == "quick":
        assert metrics["perf/updates"] == len(load_dataset(built).train) // 100   # one epoch
        from wordnet.models.predictor import Predictor
        from wordnet.serving.pyfunc import WordNetModel
        served = WordNetModel.of(Predictor.load(out / "model.bin", out / "vocab.txt"))
        [answer] = served.predict(["Have a zebra"])             # the served model's answer
        assert answer.context == ["have", "a", UNK] and len(answer.predictions) == 5
        assert answer.unknown == ["zebra"]                      # the note, in the answer
        said = invoke("predict", "have a zebra", "--model", out, "--json")
        assert said.exit_code == 0 and said.stderr == "", said.output
        shown = json.loads(said.stdout)
        assert (shown["context"], shown["unknown"]) == (["have", "a", UNK], ["zebra"])
        assert [p["word"] for p in shown["predictions"]] == [
            p.word for p in answer.predictions]
        said = invoke("predict", "have a zebra", "--model", out)
        assert said.exit_code == 0, said.output
        assert "note: 'zebra' is not in the vocabulary: read as <unk>" in said.stderr
        assert len(said.stdout.splitlines()) == 5
        # the context echoed as the model read it: the build's rule makes "good," 2 words
        said = invoke("generate", "Very good,", "--model", out, "--words", "2")
        assert said.exit_code == 0, said.output
        assert said.stdout.split()[:3] == ["very", "good", ","]
        assert len(said.stdout.split()) == 5
    else:
        said = invoke("nearest", "zebra", "--model", out, "-k", "3")
        assert said.exit_code == 0 and len(said.stdout.splitlines()) == 3
        assert "read as <unk>" in said.stderr


# -- a real corpus --------------------------------------------------------------------

@pytest.fixture(scope="module")
def kjv_data(kjv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kjv") / "kjv"
    builder.build([str(kjv)], out, mode="text")         # defaults: 10,000 words, min count 5
    return out


def test_the_king_james_bible_builds_into_the_pinned_counts(kjv_data):
    counts = json.loads((kjv_data / "manifest.json").read_text())["counts"]
    assert counts["vocabulary"] == 4877                 # the words seen 5 times in training
    assert {s: (c["sentences"], c["words"], c["4grams"]) for s, c in counts["splits"].items()} == {
        "train": (24_771, 758_471, 685_029), "valid": (3_169, 96_523, 87_126),
        "test": (3_005, 92_438, 83_513)}
    words = (kjv_data / "vocab.txt").read_text().split()
    assert words[:6] == [UNK, ",", "the", "and", "of", "."] and "lord" in words


@pytest.mark.parametrize("recipe, shortened", [
    ("quick", 300), ("window", 300), ("skipgram", 300), ("skipgram-neg", 3000)])
def test_every_model_learns_from_the_king_james_bible(kjv_data, tmp_path, recipe, shortened,
                                                      tracking_uri):
    out = tmp_path / "run"
    result = invoke("run", "--data-dir", kjv_data, "--pipeline", recipe, "--out", out,
                    "--set", f"early_stop={shortened}", "--no-register")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    uniform = np.log(4877)
    if recipe == "quick":
        # 300 updates learn the frequent words; Kneser-Ney, on the same split, is far ahead
        assert metrics["test/ce"] < uniform - 2
        assert metrics["baseline/test_ce"] < metrics["test/ce"]
        said = invoke("predict", "and god said", "--model", out)
        assert said.exit_code == 0 and len(said.stdout.splitlines()) == 5
    elif recipe == "window":
        assert metrics["test/ranking_accuracy"] > 0.6
    elif recipe == "skipgram":
        assert -metrics["test/log_likelihood"] < uniform - 0.5
    else:                           # its objective is not the softmax's: its loss falls
        loss = json.loads((out / "history.json").read_text())["train_ce"]
        assert loss[-1] < 0.95 * loss[0], (loss[0], loss[-1])
    import mlflow
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"kjv-train", "kjv-valid", "kjv-test"}
    manifest = json.loads((kjv_data / "manifest.json").read_text())
    assert inputs["kjv-test"].digest == manifest["files"]["test_4grams.npy"][:20]
    assert run.data.tags["wordnet.data.sources"] == "kjv.txt"
    logged = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                 artifact_path="data/manifest.json",
                                                 dst_path=str(tmp_path))
    assert json.loads(Path(logged).read_text()) == manifest


def test_a_vocabulary_of_10000_words_trains_and_answers(tmp_path):
    """A text of 12,000 distinct words (Zipf-distributed): the 4-gram model and
    full-softmax skip-gram train at V = 10,000; predict and nearest answer from it."""
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 12_001)
    words = rng.choice(12_000, size=300_000, p=ranks ** -1.0 / (ranks ** -1.0).sum())
    lines = np.array_split(words, 300_000 // 12)
    (tmp_path / "zipf.txt").write_text("\n".join(" ".join(f"w{i}" for i in line)
                                                 for line in lines) + "\n")
    assert invoke("data", "build", tmp_path / "zipf.txt", "--out", tmp_path / "data",
                  "--min-count", 1).exit_code == 0
    assert len((tmp_path / "data" / "vocab.txt").read_text().split()) == 10_000
    for recipe, out in (("quick", "fourgram"), ("skipgram", "skipgram")):
        result = invoke("run", "--data-dir", tmp_path / "data", "--pipeline", recipe,
                        "--out", tmp_path / out, "--no-tracking", "--set", "early_stop=20")
        assert result.exit_code == 0, result.output
        assert "over 10,000 words" in result.stdout
    said = invoke("predict", "w0 w1 w2", "--model", tmp_path / "fourgram", "-k", "3")
    assert said.exit_code == 0 and len(said.stdout.splitlines()) == 3
    said = invoke("nearest", "w1", "--model", tmp_path / "skipgram", "-k", "3")
    assert said.exit_code == 0 and len(said.stdout.splitlines()) == 3
    assert (tmp_path / "skipgram" / "embeddings.png").stat().st_size > 0   # 300 words mapped
