"""wordnet.cli through click's runner and through the installed console script."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wordnet import __version__
from wordnet.cli import cli
from wordnet.data import embedded

SCRIPT = str(Path(sys.executable).with_name("wordnet-pipeline"))
HAVE_A_GOOD = [("time", 0.332076), ("day", 0.102091), ("game", 0.059815), ("team", 0.057552),
               ("year", 0.041762)]                                    # SPEC section 6
TINY = ["--set", "backend=exact", "--set", "epochs=1", "--set", "early_stop=20"]


@pytest.fixture(scope="module")
def model9(data_dir) -> str:
    return str(data_dir / "model9-3000.bin")


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_line_error(result, code: int) -> str:
    """The error of a failed command: one line, the last, and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == lines[-1:], result.stderr
    return errors[0]


def all_commands(group, path=()):
    for name, command in group.commands.items():
        yield path + (name,)
        if isinstance(command, click.Group):
            yield from all_commands(command, path + (name,))


# -- the group ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [()] + list(all_commands(cli)), ids=" ".join)
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output


def test_help_documents_the_exit_status_once():
    """In the top-level help; each command points there instead of repeating it."""
    assert "Exit status: 0 success; 1 failure" in invoke("--help").output
    for command in all_commands(cli):
        text = invoke(*command, "--help").output
        assert "Exit status: 0" not in text, command
        if not isinstance(cli.commands[command[0]], click.Group) or len(command) > 1:
            assert "Exit statuses: see wordnet-pipeline --help." in text, command


def test_help_names_every_recipe_and_what_a_run_is_named():
    from wordnet.runs.recipes import recipe_names

    def squeezed(text):                           # click may wrap at a hyphen: no spaces
        return "".join(text.split())
    for command in ("run", "sweep"):
        text = squeezed(invoke(command, "--help").output)
        assert squeezed(f"Recipe: {', '.join(recipe_names())}, or a .toml file.") in text
        assert squeezed("Name of the MLflow run and, without --out, of the output folder") in text
    assert squeezed("e.g. 'lr=0.2 · quick · fast'; the folder RECIPE-DATE-TIME") in squeezed(
        invoke("run", "--help").output)
    assert "How many next words to show" in invoke("predict", "--help").output


def test_run_help_lists_every_set_key():
    from wordnet.models import registry
    text = " ".join(invoke("run", "--help").output.split())
    for key in registry.every_key():
        assert key in text, key


def test_version():
    assert invoke("--version").output.strip() == f"wordnet-pipeline, version {__version__}"


# -- predict and friends --------------------------------------------------------------------

def test_predict_json_gives_the_spec_top_5(model9):
    result = invoke("predict", "have a good", "--model", model9, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["context"] == ["have", "a", "good"] and answer["unknown"] == []
    assert [p["word"] for p in answer["predictions"]] == [w for w, _ in HAVE_A_GOOD]
    for p, (_, expected) in zip(answer["predictions"], HAVE_A_GOOD):
        assert p["probability"] == pytest.approx(expected, abs=5e-7)


def test_predict_normalises_like_the_training_data(model9):
    expected = invoke("predict", "have a good", "--model", model9).stdout
    assert invoke("predict", "  HAVE a\tGood ", "--model", model9).stdout == expected
    assert invoke("predict", "have", "a", "good", "--model", model9).stdout == expected
    top2 = invoke("predict", "have a good", "--model", model9, "--top-k", "2").stdout
    assert top2.splitlines() == [" 1. time  0.332076", " 2. day   0.102091"]


@pytest.mark.parametrize("text, message", [
    ("hve a good", "'hve' is not in the vocabulary (closest: have"),
    ("a good", "expected 3 words, got 2"),
    ("have a good day", "expected 3 words, got 4"),
    ("   ", "empty input"),
    ("have a caf\u00e9", "non-ASCII character"),
    ("have " * 300, "too long"),
])
def test_bad_input_is_a_one_line_usage_error(model9, text, message):
    assert message in one_line_error(invoke("predict", text, "--model", model9), 2)


def test_a_missing_model_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = one_line_error(invoke("predict", "have a good", "--model", tmp_path / "no.bin"), 1)
    assert "no such model file" in error
    error = one_line_error(invoke("predict", "have a good"), 1)
    assert "no trained 4-gram model" in error and "wordnet-pipeline run --stage all" in error
    (tmp_path / "bad.bin").write_bytes(b"\0" * 10)
    assert "not a WordNet checkpoint" in one_line_error(
        invoke("predict", "have a good", "--model", tmp_path / "bad.bin"), 1)


def test_debug_shows_the_traceback(model9):
    result = invoke("--debug", "predict", "hve a good", "--model", model9)
    assert type(result.exception).__name__ == "UnknownWordError"


def test_generate(model9):
    greedy = invoke("generate", "have a good", "--words", "3", "--model", model9)
    assert greedy.stdout.split()[:4] == ["have", "a", "good", "time"]
    assert len(greedy.stdout.split()) == 6
    sampled = [invoke("generate", "Have A good", "-n", "8", "--sample", "--seed", "7",
                      "--temperature", "1.5", "--model", model9).stdout for _ in range(2)]
    assert sampled[0] == sampled[1] and sampled[0].startswith("have a good ")
    assert "give 3 words" in one_line_error(invoke("generate", "--model", model9), 2)
    result = invoke("generate", "have a good", "--seed", "1", "--model", model9)
    assert result.exit_code == 2 and "--seed only applies with --sample" in result.output


def test_generate_temperature_is_a_number(model9):
    error = one_line_error(invoke("generate", "have a good", "--sample", "--temperature", "nan",
                                  "--model", model9), 2)
    assert error == "Error: Invalid value for --temperature: nan is not a temperature"
    coldest = invoke("generate", "have a good", "--sample", "--temperature", "1e-300",
                     "--model", model9)                      # the likeliest word each time
    assert coldest.stdout == invoke("generate", "have a good", "--model", model9).stdout


def test_generate_interactive_output_grows_linearly(model9):
    """Each step shows the last SHOWN_WORDS words, not the whole text: 400 steps gave
    400 lines of up to 400 words; the whole text comes once, at the end."""
    from wordnet.use import SHOWN_WORDS
    steps = 400
    result = invoke("generate", "--interactive", "--model", model9,
                    input="have a good\n" + "\n" * steps + "q\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    *steps_shown, last = lines
    assert len(last.split()) == 3 + steps and last.startswith("have a good time")
    assert max(len(line.split()) for line in steps_shown) <= SHOWN_WORDS + 7   # "... " + top 5
    assert len(result.stdout) < 200 * (steps + 3) + len(last)


def test_generate_interactive_is_the_c_loop(model9):
    result = invoke("generate", "--interactive", "--model", model9, input="have a good\n2\n\nq\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("|Input first 3 words > have a good\n*Top 5 = 1.time(0.332076) "
                          "2.day(0.102091) 3.game(0.059815) 4.team(0.057552) 5.year(0.041762)")
    assert "> have a good day\n" in out                      # 2 chose the second word
    assert out.count("|Choose a number (default = 1)> ") == 3


def test_nearest_and_distance(model9):
    lines = invoke("nearest", "Day", "--k", "3", "--model", model9).stdout.splitlines()
    words = [line.split()[0] for line in lines]
    distances = [float(line.split()[1]) for line in lines]
    assert len(words) == 3 and "day" not in words and distances == sorted(distances)
    d = float(invoke("distance", "day", words[0], "--model", model9).stdout)
    assert d == pytest.approx(distances[0], abs=1e-6)
    assert float(invoke("distance", "day", "day", "--model", model9).stdout) == 0.0
    assert "'dya' is not in the vocabulary" in one_line_error(
        invoke("nearest", "dya", "--model", model9), 2)


def test_info_shows_the_header_as_the_c_program(model9):
    out = invoke("info", model9).stdout.splitlines()
    assert out[0] == "## Model Info"
    assert "   Mini-batch size          =      100" in out
    assert "   Momentum                 = 0.900000" in out
    assert "   Verify per iteration     = 2147483647" in out
    assert "   Vocabulary size          =      250" in out
    assert "no such model file" in one_line_error(invoke("info", "/no/such.bin"), 1)
    assert one_line_error(invoke("info", "/dev/zero"), 1) == (
        "Error: /dev/zero: not a regular file: not a checkpoint")


def test_info_takes_what_model_takes_and_needs_no_vocabulary(model9, tmp_path, monkeypatch):
    folder = tmp_path / "artifacts" / "a"                    # a run folder without vocab.txt
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(Path(model9).read_bytes())
    (folder / "run.json").write_text(json.dumps({"status": "FINISHED", "finished": "1"}))
    expected = invoke("info", model9).stdout
    monkeypatch.chdir(tmp_path)
    for args in (["info", folder], ["info", "--model", folder], ["info", "--model", model9],
                 ["info"]):                                   # nothing: the latest run
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == expected
    assert "MODEL or --model" in one_line_error(invoke("info", model9, "--model", model9), 2)


def test_the_model_commands_say_on_stderr_which_model_they_read(model9, tmp_path,
                                                                 monkeypatch):
    """predict, generate, nearest, distance and info name the model file and its MLflow
    run on stderr, the latest run's too (it changes after a new run); stdout is the
    answer alone, and with --json stderr stays empty."""
    folder = tmp_path / "artifacts" / "quick-20261205-101500"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(Path(model9).read_bytes())
    (folder / "vocab.txt").write_bytes(embedded.read_bytes("vocab.txt"))
    (folder / "run.json").write_text(json.dumps({
        "status": "FINISHED", "finished": "1", "mlflow_run_id": "0" * 32,
        "mlflow_run_name": "lr=0.2 · quick · fast"}))
    monkeypatch.chdir(tmp_path)
    said = "model: artifacts/quick-20261205-101500/model.bin (MLflow run 'lr=0.2 · quick · fast')\n"
    for command in (["predict", "have a good"], ["generate", "have a good", "-n", "2"],
                    ["nearest", "day", "-k", "2"], ["distance", "day", "week"], ["info"]):
        for model in ([], ["--model", "artifacts/quick-20261205-101500"]):
            result = invoke(*command, *model)
            assert result.exit_code == 0, result.output
            assert result.stderr == said, command
            assert "model:" not in result.stdout
    assert invoke("predict", "have a good").stdout == invoke("predict", "have a good",
                                                             "--model", model9).stdout
    assert invoke("predict", "have a good", "--model", model9).stderr == f"model: {model9}\n"
    quiet = invoke("predict", "have a good", "--json")
    assert quiet.exit_code == 0 and quiet.stderr == "" and json.loads(quiet.stdout)


def test_info_says_a_skipgram_models_objective(tmp_path):
    """Skip-gram trained with negative sampling, or the full softmax: its recipe beside
    the checkpoint says which; without the recipe, the kind alone."""
    from wordnet.models import registry
    from wordnet.runs.recipes import load_recipe, with_overrides
    from wordnet.runs.rundir import RunDir
    kind = registry.kind("skipgram")
    params = kind.model.initialize(kind.config(), 250).params()
    words = [f"w{n}" for n in range(250)]
    expected = {"skipgram-neg": "skipgram (negative sampling, 5 negatives)",
                "skipgram": "skipgram (full softmax)"}
    for name in (*expected, "one"):
        (tmp_path / name).mkdir()
    for name, shown in expected.items():
        RunDir(tmp_path / name).save_npz_model("skipgram", params, words, load_recipe(name))
        assert f"   Model                    = {shown}" in invoke("info", tmp_path / name).stdout
    one = with_overrides(load_recipe("skipgram-neg"), {"negatives": "1"})
    RunDir(tmp_path / "one").save_npz_model("skipgram", params, words, one)
    assert "= skipgram (negative sampling, 1 negative)\n" in invoke("info", tmp_path / "one").stdout
    (tmp_path / "skipgram" / "recipe.json").unlink()
    lines = invoke("info", tmp_path / "skipgram").stdout.splitlines()
    assert lines[1] == "   Model                    = skipgram"


# -- run and sweep --------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--set", "epoch=2"], "unknown key"),
    (["--set", "learning_rate=fast"], "'fast' is not a number"),
    (["--set", "momentum=2"], "momentum must be in [0, 1)"),
    (["--set", "dtype=float32"], "dtype float32 needs backend = fast"),
    (["--pipeline", "nope"], "unknown pipeline 'nope'"),
    (["--stage", "test", "--set", "epochs=3"], "only applies with --stage train"),
    (["--stage", "test", "--from-run", "abc", "--no-tracking"], "--from-run needs MLflow"),
    (["--stage", "fit"], "'fit' is not one of"),
    (["--set", "seed=-1", "--set", "init=gaussian"], "seed must be 0 or more, got -1"),
])
def test_run_usage_errors_come_before_anything_runs(args, message, tmp_path):
    result = invoke("run", *args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_an_unreachable_tracking_server_fails_in_seconds(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    error = one_line_error(invoke("run", "--out", tmp_path, "--tracking-uri",
                                  f"http://127.0.0.1:{port}"), 1)
    assert time.monotonic() - start < 10
    assert "cannot reach the tracking server" in error and "--no-tracking" in error


def test_an_unwritable_output_folder_fails_at_the_start(tmp_path):
    (tmp_path / "file").write_text("")
    error = one_line_error(invoke("run", "--out", tmp_path / "file" / "out", "--no-tracking"), 1)
    assert "cannot write the run's files there" in error


@pytest.mark.parametrize("out", ["/sys/kernel", "/sys/wordnet-out"],
                         ids=["a folder that takes no files", "a folder that cannot be made"])
def test_a_read_only_output_folder_fails_before_anything_starts(out, data_dir, tmp_path,
                                                                monkeypatch):
    """Root writes through chmod, so sysfs (read-only in containers, refusing new
    files as root elsewhere) stands for a read-only --out.  Tracking is on, yet no
    MLflow store is even opened."""
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    error = one_line_error(invoke("run", "--stage", "train", *TINY, "--data-dir", data_dir,
                                  "--out", out), 1)
    assert error.startswith(f"Error: {out}: cannot write the run's files there (")
    assert error.endswith("); choose another --out")
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []                   # no mlflow.db, no artifacts/


def test_a_full_disk_fails_before_training(data_dir, tmp_path, monkeypatch):
    """Less free space than the checkpoint, resume state and history need: a one-line
    error before the first update, no model written, the run recorded as FAILED."""
    from collections import namedtuple

    from wordnet.runs import rundir
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**5))
    error = one_line_error(invoke("run", "--stage", "train", *TINY, "--data-dir", data_dir,
                                  "--out", tmp_path, "--no-tracking"), 1)
    assert f"{tmp_path}: only 0.1 MB free, and the run needs about " in error
    assert "choose another --out" in error
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "FAILED"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "run.json"]  # .lock: the run held it


def test_too_little_memory_fails_before_training(data_dir, tmp_path, monkeypatch):
    """hidden_size=1000000 fits the disk check, not a machine's memory: it ran 65 s into
    MemoryError.  The estimate, against the memory available (4 GB here), refuses it
    before the model is made."""
    from wordnet.models import base as model
    monkeypatch.setattr(model, "available_memory", lambda: 4 * 10**9)
    start = time.monotonic()
    error = one_line_error(invoke("run", "--stage", "train", *TINY, "--set",
                                  "hidden_size=1000000", "--data-dir", data_dir,
                                  "--out", tmp_path, "--no-tracking"), 1)
    assert time.monotonic() - start < 10
    assert error.startswith("Error: training these sizes needs about 2")      # 22.4 GB
    assert error.endswith("and 4.0 GB are available; choose a smaller hidden_size, "
                          "embedding_size or batch_size")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "run.json"]


def test_missing_data_fails_before_anything_is_made(tmp_path, monkeypatch):
    """A --data-dir without the data: one line naming the way out, and no run folder, no
    data/, no MLflow store (tracking is on), whichever the stages."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    for stages in (["--stage", "all"], ["--stage", "test"]):
        error = one_line_error(invoke("run", *stages, "--data-dir", "empty"), 1)
        assert error.startswith("Error: empty: no WordNet data there (--data-dir)")
        assert "`wordnet-pipeline data fetch --data-dir empty` fills it" in error
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_a_failed_stage_run_never_hides_the_last_good_model(data_dir, tmp_path, monkeypatch):
    """After a finished run, stage runs on its folder that fail (a failed check, missing
    data) leave its record as it was: predict and later stages still find its model."""
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "--stage", "train", *TINY, "--no-tracking", "--run-name", "tiny")
    assert result.exit_code == 0, result.output
    manifest = (tmp_path / "artifacts" / "tiny" / "run.json").read_text()
    from wordnet.runs import reproduce
    with monkeypatch.context() as held:                 # to every check: 20 updates fail
        held.setattr(reproduce, "waived", lambda recipe, rows: {})
        one_line_error(invoke("run", "--stage", "reproduce", "--no-tracking"), 1)
    one_line_error(invoke("run", "--stage", "test", "--no-tracking", "--data-dir", "nowhere"), 1)
    assert (tmp_path / "artifacts" / "tiny" / "run.json").read_text() == manifest
    assert invoke("predict", "have a good").exit_code == 0
    result = invoke("run", "--stage", "test", "--no-tracking")
    assert result.exit_code == 0 and "artifacts/tiny" in result.output


def test_train_then_test_then_predict_the_latest_run(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                              # artifacts/ lands here
    result = invoke("run", "--stage", "train", *TINY, "--data-dir", data_dir, "--no-tracking",
                    "--run-name", "tiny")
    assert result.exit_code == 0, result.output
    out = tmp_path / "artifacts" / "tiny"
    assert json.loads((out / "run.json").read_text())["status"] == "FINISHED"
    result = invoke("run", "--stage", "test", "--data-dir", data_dir, "--no-tracking")
    assert result.exit_code == 0, result.output                # finds artifacts/tiny itself
    assert "test/ce" in json.loads((out / "metrics.json").read_text())
    result = invoke("predict", "have a good", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["predictions"]) == 5


def test_sweep_runs_every_combination(data_dir, tmp_path):
    result = invoke("sweep", "--set", "learning_rate=0.05,0.2", "--set", "epochs=1",
                    "--set", "early_stop=5", "--set", "backend=exact", "--stage", "validate",
                    "--data-dir", data_dir, "--out", tmp_path, "--no-tracking")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "sweep.json").read_text())
    assert sorted(r["learning_rate"] for r in results) == ["0.05", "0.2"]
    assert all(r["status"] == "FINISHED" and "valid/final_ce" in r for r in results)
    assert results[0]["valid/final_ce"] <= results[1]["valid/final_ce"]        # best first
    assert "| 1 | lr=" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "sweep.csv").read_text().startswith("rank,run,learning_rate,")
    assert (tmp_path / "learning_rate=0.2-epochs=1-early_stop=5-backend=exact" / "model.bin").is_file()


# -- the console script ---------------------------------------------------------------------

def test_the_console_script_predicts_fast_without_mlflow(model9, tmp_path):
    start = time.monotonic()
    done = subprocess.run([SCRIPT, "predict", "have a good", "--model", model9, "--json"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert [p["word"] for p in json.loads(done.stdout)["predictions"]] == [w for w, _ in HAVE_A_GOOD]
    assert elapsed < 5                                       # 0.3 s on an idle machine
    probe = ("import sys; from wordnet.cli import cli; "
             f"cli.main(['predict', 'have a good', '--model', {model9!r}], standalone_mode=False); "
             "print([m for m in ('mlflow', 'scipy', 'matplotlib') if m in sys.modules])")
    # From another folder: in the checkout, `python -c` would import the sources.
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.stdout.splitlines()[-1:] == ["[]"], done.stderr


def test_the_console_script_reports_errors_in_one_line():
    done = subprocess.run([SCRIPT, "predict", "have a good", "--model", "/no/such.bin"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "Error: /no/such.bin: no such model file\n"


def interrupted(args, signum, after: float):
    """(exit status, stdout, stderr) of the console script sent ``signum`` ``after``
    seconds into training."""
    process = subprocess.Popen([SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        seen = []
        for line in process.stdout:                          # wait until training starts
            seen.append(line)
            if line.startswith("data:"):
                break
        time.sleep(after)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(seen) + out, err


def test_ctrl_c_stops_a_run_with_status_130(data_dir, tmp_path):
    """SIGINT during training: exit status 130 and the run recorded as KILLED."""
    status, _, stderr = interrupted(["run", "--stage", "train", "--set", "backend=exact",
                                     "--data-dir", data_dir, "--out", tmp_path, "--no-tracking"],
                                    signal.SIGINT, after=1.0)
    assert status == 130, stderr
    assert "Interrupted." in stderr and "Traceback" not in stderr
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "KILLED"


def test_sigterm_then_resume_gives_the_uninterrupted_model(data_dir, tmp_path):
    """SIGTERM mid-training saves model and state, and ends with the documented 143
    "Terminated." (was 130); --resume finishes byte-identically."""
    recipe = ["--set", "backend=exact", "--set", "epochs=2", "--set", "early_stop=300",
              "--data-dir", str(data_dir), "--no-tracking"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    subprocess.run([SCRIPT, "run", "--stage", "train", "--out", str(whole), *recipe],
                   check=True, capture_output=True, timeout=300)

    status, out, err = interrupted(["run", "--stage", "train", "--out", parts, *recipe],
                                   signal.SIGTERM, after=1.5)
    assert status == 143, err
    assert err.splitlines()[-1] == "Terminated."
    assert "stopped at iteration" in out and "Traceback" not in err
    assert json.loads((parts / "run.json").read_text())["status"] == "KILLED"
    assert (parts / "model.bin.state.npz").is_file()

    resumed = subprocess.run([SCRIPT, "run", "--stage", "train", "--resume", "--out", str(parts),
                              "--data-dir", str(data_dir), "--no-tracking"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration" in resumed.stdout
    assert (parts / "model.bin").read_bytes() == (whole / "model.bin").read_bytes()
    assert not (parts / "model.bin.state.npz").exists()
    history = json.loads((parts / "history.json").read_text())
    assert history["train_ce"] == json.loads((whole / "history.json").read_text())["train_ce"]


def test_resume_needs_an_out_folder_and_no_overrides():
    result = CliRunner().invoke(cli, ["run", "--resume", "--set", "epochs=2"])
    assert result.exit_code == 2 and "--resume continues the training" in result.output


@pytest.mark.slow
def test_out_of_the_box_the_reference_recipe_is_the_c_programs(tmp_path):
    """What a new user does, in an empty folder, without the network or any setting: the
    whole reference recipe, tracked, proves byte identity with c_full.bin; then predict
    answers from that run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WORDNET_", "MLFLOW_"))}
    env["http_proxy"] = env["https_proxy"] = "http://127.0.0.1:9"     # no network, were it tried
    done = subprocess.run([SCRIPT, "run", "--stage", "all"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass  byte identity with c_full.bin: True" in done.stdout
    assert "reproduce: All 11 checks passed, 6 of them on the model just trained." in done.stdout
    [out] = (tmp_path / "artifacts").iterdir()
    assert (out / "model.bin").read_bytes() == embedded.read_bytes("c_full.bin")
    # the run's folder, MLflow's store and its artifacts; no data/
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "mlflow.db", "mlruns"]
    done = subprocess.run([SCRIPT, "predict", "have a good"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from wordnet.data.dataset import Vocabulary
    from wordnet.models.checkpoint import load_embedded
    from wordnet.models.predictor import Predictor
    c_full = Predictor(load_embedded("c_full.bin")[1], Vocabulary.embedded())
    assert [line.split()[1] for line in done.stdout.splitlines()] == [
        p.word for p in c_full.predict("have a good", 5)]                 # time, team, one, ...


def test_an_empty_registered_name_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = one_line_error(invoke("run", "--stage", "train", *TINY, "--register", " "), 2)
    assert "--register" in error and "--no-register" in error
    assert list(tmp_path.iterdir()) == []                   # no folder, no store


def test_a_second_run_into_a_folder_in_use_fails_naming_the_first(data_dir, tmp_path):
    """Two runs into one --out: the second stops at once, naming the first (its files
    mixed with the first's)."""
    first = subprocess.Popen([SCRIPT, "run", "--stage", "train", "--set", "backend=exact",
                              "--data-dir", str(data_dir), "--out", str(tmp_path),
                              "--no-tracking"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        for line in first.stdout:                            # wait until it trains
            if line.startswith("data:"):
                break
        second = subprocess.run([SCRIPT, "run", "--stage", "train", *TINY, "--data-dir",
                                 str(data_dir), "--out", str(tmp_path), "--no-tracking"],
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None
        assert second.returncode == 1
        assert second.stderr.startswith(f"Error: {tmp_path}: in use by another run (pid "
                                        f"{first.pid}, started ")
        assert "run --stage train --set backend=exact" in second.stderr
        assert len(second.stderr.splitlines()) == 1
        assert not (tmp_path / "run.json").exists()         # the second wrote nothing
    finally:
        first.kill()
        first.wait()


RESUMABLE = ["--set", "backend=exact", "--set", "epochs=2", "--set", "early_stop=300"]


def killed_after_a_save(data_dir, out: Path, fresh_save) -> Path:
    """SIGKILL a training run into ``out`` just after it has saved its state
    periodically (every 0.12 s); the state's path."""
    killed = subprocess.Popen([SCRIPT, "run", "--stage", "train", "--out", str(out),
                               *RESUMABLE, "--set", "checkpoint_minutes=0.002", "--data-dir",
                               str(data_dir), "--no-tracking"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "model.bin.state.npz"
    try:
        fresh_save(killed, state)                            # the first save
    finally:
        killed.kill()
        killed.wait(timeout=30)
    return state


def test_sigkill_then_resume_continues_from_the_periodic_save(data_dir, fresh_save, tmp_path):
    """SIGKILL loses only what came after the last periodic save (it lost everything);
    --resume then finishes byte-identically with an uninterrupted run."""
    common = ["--data-dir", str(data_dir), "--no-tracking"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    subprocess.run([SCRIPT, "run", "--stage", "train", "--out", str(whole), *RESUMABLE,
                    *common], check=True, capture_output=True, timeout=300)
    state = killed_after_a_save(data_dir, parts, fresh_save)
    resumed = subprocess.run([SCRIPT, "run", "--stage", "train", "--resume", "--out", str(parts),
                              *common], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration" in resumed.stdout
    assert (parts / "model.bin").read_bytes() == (whole / "model.bin").read_bytes()
    assert json.loads((parts / "history.json").read_text())["train_ce"] == \
        json.loads((whole / "history.json").read_text())["train_ce"]
    assert not state.exists()


@pytest.fixture(scope="module")
def killed_folder(data_dir, fresh_save, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killed")
    killed_after_a_save(data_dir, out, fresh_save)
    return out


def edit_state(state: Path, **changes):
    """Rewrite the npz ``state`` with entries changed (None: removed)."""
    import numpy as np
    with np.load(state) as f:
        entries = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            entries.pop(key)
        else:
            entries[key] = value
    with open(state, "wb") as f:
        np.savez(f, **entries)


@pytest.mark.parametrize("damage, message", [
    ("newer model", "belongs to another model.bin than the one beside it"),
    ("batch beyond the epoch", "minibatch 9999 is beyond the"),
    ("epoch past the end", "epoch 3 is not one of the recipe's 2"),
    ("empty", "empty: not a resume state"),
    ("no velocity", "not a resume state: vel_W3 missing"),
    ("extra key", "not a resume state: unexpected extra"),
    ("NaN velocity", "velocity of W3 holds NaN, infinite or implausible values"),
    ("1e308 velocity", "velocity of W3 holds NaN, infinite or implausible values"),
    ("velocity of strings", "vel_W3 holds <U1, not float64"),
])
def test_resume_refuses_a_state_that_is_not_the_models_or_out_of_range(
        killed_folder, data_dir, tmp_path, damage, message):
    """A state that does not go with model.bin (a kill between the two writes), or that
    was edited, is refused in one line (it resumed from the wrong place, exit 0, or
    failed with EOFError / KeyError)."""
    import shutil

    import numpy as np
    out = tmp_path / "run"
    shutil.copytree(killed_folder, out)
    state = out / "model.bin.state.npz"
    position = json.loads(str(np.load(state)["position"]))
    if damage == "newer model":
        blob = bytearray((out / "model.bin").read_bytes())
        blob[-8:] = np.float64(0.5).tobytes()
        (out / "model.bin").write_bytes(bytes(blob))
    elif damage == "batch beyond the epoch":
        edit_state(state, position=np.array(json.dumps(position | {"batch": 9999})))
    elif damage == "epoch past the end":
        edit_state(state, position=np.array(json.dumps(position | {"epoch": 2})))
    elif damage == "empty":
        state.write_bytes(b"")
    elif damage == "no velocity":
        edit_state(state, vel_W3=None)
    elif damage.endswith("velocity"):
        shape = np.load(state)["vel_W3"].shape
        edit_state(state, vel_W3=np.full(shape, np.nan if damage == "NaN velocity" else 1e308))
    elif damage == "velocity of strings":
        edit_state(state, vel_W3=np.full(np.load(state)["vel_W3"].shape, "x"))
    else:
        edit_state(state, extra=np.zeros(1))
    result = invoke("run", "--stage", "train", "--resume", "--out", out,
                    "--data-dir", data_dir, "--no-tracking")
    error = one_line_error(result, 1)
    assert str(state) in error and message in error
    assert json.loads((out / "run.json").read_text())["status"] == "FAILED"


def fill_disk(monkeypatch, names, after: int = 0):
    """Writes of the files ``names`` fail as on a full disk (ENOSPC, no file named),
    after ``after`` of them succeeded."""
    import errno

    from wordnet import fileio
    fsync, done = fileio.os.fsync, []

    def full(fd):
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.rsplit(".", 2)[0] in {f".{n}" for n in names}:   # .model.bin.abc123.tmp
            done.append(name)
            if len(done) > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)
    monkeypatch.setattr(fileio.os, "fsync", full)


def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(data_dir, tmp_path,
                                                                  monkeypatch):
    """The final save fails: exit 1 naming model.bin (it named no file); the periodic
    save before it stays, whole, with its state, and --resume accepts them."""
    fill_disk(monkeypatch, ["model.bin"], after=1)
    result = invoke("run", "--stage", "train", *RESUMABLE, "--set", "checkpoint_minutes=0.002",
                    "--data-dir", data_dir, "--out", tmp_path, "--no-tracking")
    error = one_line_error(result, 1)
    assert error == (f"Error: [Errno 28] No space left on device: "
                     f"'{tmp_path / 'model.bin'}'")
    assert "warning: no periodic checkpoint ([Errno 28]" in result.output
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == []
    monkeypatch.undo()
    from wordnet.models import checkpoint
    header, _ = checkpoint.load(tmp_path / "model.bin")
    checkpoint.load_state(tmp_path / "model.bin", header.shapes())   # they go together


def test_ctrl_c_on_a_full_disk_still_exits_130(data_dir, tmp_path, monkeypatch):
    """Nothing can be saved, the record neither: exit status 130, as documented (was 1)."""
    from wordnet.training.trainer import Trainer
    run = Trainer.run

    def interrupted_run(self, *args, **kwargs):
        self.request_stop()                          # as Ctrl-C before the first minibatch
        return run(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "run", interrupted_run)
    fill_disk(monkeypatch, ["model.bin", "vocab.txt", "recipe.json", "run.json"])
    result = invoke("run", "--stage", "train", *TINY, "--data-dir", data_dir,
                    "--out", tmp_path, "--no-tracking")
    assert result.exit_code == 130, result.output
    assert "Interrupted." in result.stderr and "Traceback" not in result.output
    assert f"not saved ([Errno 28] No space left on device: '{tmp_path / 'model.bin'}')" \
        in result.output
    assert not (tmp_path / "model.bin").exists()


def test_a_reader_that_goes_away_ends_the_command_quietly(model9):
    """`wordnet-pipeline nearest day | head -1`: no "Broken pipe" error, the status of a
    program SIGPIPE ended."""
    reader, writer = os.pipe()
    os.close(reader)                              # nobody will read: the first write fails
    try:
        done = subprocess.run([SCRIPT, "nearest", "day", "--model", model9, "-k", "50"],
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert done.returncode == 141 and done.stderr == f"model: {model9}\n"   # no error after it


def test_generate_refuses_a_negative_seed_as_a_usage_error():
    """Issue 21 item 7: `generate --seed -1` was exit 1 (NumPy's ValueError), not 2."""
    result = invoke("generate", "have", "a", "good", "--sample", "--seed", "-1")
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
