"""Limits and exit statuses (issue 21, items 4, 5 and 9): threads bounded, a run's name
never a path, and every command ending as the top-level help documents."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.runs import rundir

SCRIPT = str(Path(sys.executable).with_name("wordnet-pipeline"))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(*args, env=None, cwd=None, timeout=120, **kwargs):
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ | (env or {}), cwd=cwd, **kwargs)


def one_line_error(done, status: int, *said: str) -> None:
    assert done.returncode == status, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for text in said:
        assert text in lines[0], lines[0]


# -- item 4: threads ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["100000", "40000", "²", "0", "-1", "3.0", "9" * 40])
def test_wordnet_threads_out_of_range_or_not_ascii_digits_is_a_usage_error(value, tmp_path):
    """100000 segfaulted in libgomp, 40000 failed to create threads, ² (isdigit() is
    True for it) was "unexpected ValueError": one line naming the limit, exit 2, and
    nothing made."""
    from wordnet.models.base import max_threads
    done = script("run", "--stage", "load", "--no-tracking", "--out", tmp_path / "out",
                  env={"WORDNET_THREADS": value})
    one_line_error(done, 2, "$WORDNET_THREADS must be a whole number of threads from 1 to "
                            f"{max_threads()} (4 per usable CPU, at most 256)")
    assert not (tmp_path / "out").exists()


def test_the_thread_limit_is_four_per_cpu_at_most_256(monkeypatch):
    from wordnet.models import base
    monkeypatch.setattr(base, "_usable_cpus", lambda: 2)
    assert base.max_threads() == 8
    monkeypatch.setattr(base, "_usable_cpus", lambda: 512)
    assert base.max_threads() == 256
    monkeypatch.setenv("WORDNET_THREADS", "256")
    assert base.default_threads() == 256
    monkeypatch.setenv("WORDNET_THREADS", " 7 ")
    assert base.default_threads() == 7


def test_sweep_threads_beyond_the_limit_is_a_usage_error(tmp_path):
    """`sweep --threads 100000` gave each trial 100000 OpenMP threads: exit 139."""
    from wordnet.models.base import max_threads
    for jobs in ([], ["--jobs", "2"]):
        result = CliRunner().invoke(cli, ["sweep", "--set", "learning_rate=0.1,0.2",
                                          "--threads", "100000", *jobs, "--no-tracking",
                                          "--out", str(tmp_path / "sweep")])
        assert result.exit_code == 2, result.output
        assert (f"--threads must be a whole number of threads from 1 to {max_threads()}"
                in result.output)
        assert not (tmp_path / "sweep").exists()


def test_a_model_and_a_run_refuse_threads_beyond_the_limit():
    """Every way a number of threads enters: Layers(threads=...), RunOptions.threads."""
    from wordnet.models.base import ThreadsError, max_threads
    from wordnet.models.fourgram import FourGramConfig, Model
    from wordnet.runs.pipeline import RunOptions
    for bad in (0, -3, max_threads() + 1, 100_000, True, "2"):
        with pytest.raises(ThreadsError, match="whole number of threads from 1 to"):
            Model.initialize(FourGramConfig(), 250, threads=bad)
        with pytest.raises(ThreadsError, match="whole number of threads from 1 to"):
            RunOptions(threads=bad)
    assert Model.initialize(FourGramConfig(), 250, threads=max_threads()).threads == max_threads()
    assert RunOptions(threads=1).threads == 1


# -- item 5: a run's name is a name -----------------------------------------------------

@pytest.mark.parametrize("name, folder", [
    ("/elsewhere/x", "elsewhere-x"), ("../../x", "x"), ("a/b/c", "a-b-c"),
    (".hidden", "hidden"), ("a\\b", "a-b"), ("tab\there", "tab-here"), ("nul\x00", "nul"),
    ("lr=0.2 · quick", "lr=0.2 · quick"), ("..x", "x"), ("-x", "x"), ("é" * 300, "é" * 100),
])
def test_a_run_name_gives_one_folder_under_artifacts(name, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = rundir.output_folder(None, name, False, None)
    assert made == rundir.RUNS_DIR / folder
    assert made.parent == rundir.RUNS_DIR and made.name not in ("", ".", "..")


@pytest.mark.parametrize("name", ["..", "/", "../..", ".", "\\", " / ", "\x01"])
def test_a_run_name_that_gives_no_folder_is_a_usage_error(name, tmp_path):
    done = script("run", "--stage", "load", "--no-tracking", "--run-name", name, cwd=tmp_path)
    one_line_error(done, 2, "gives no folder name", "--run-name")
    assert list(tmp_path.iterdir()) == []


def test_the_mlflow_run_keeps_the_name_given_its_folder_is_under_artifacts(tracking_uri,
                                                                           tmp_path):
    """`--run-name ../../x` wrote the run two folders above artifacts/."""
    result = CliRunner().invoke(cli, ["run", "--stage", "load", "--run-name", "../../x"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path.parent / "x").exists()
    manifest = json.loads((tmp_path / "artifacts" / "x" / "run.json").read_text())
    assert manifest["mlflow_run_name"] == "../../x"


def test_a_sweeps_trial_folder_is_one_folder(tmp_path):
    """A swept value with a / (a path) is no folder of its own."""
    from wordnet.sweeps.search import Search, parse_space
    search = Search(parse_space(["init=/a/b.bin,../c"]), None, "tpe", None, "none")
    folders = []
    while (trial := search.next()) is not None:
        folders.append(trial.folder)
        search.finish(trial.number, "FINISHED", 1.0)
    assert folders == ["init=-a-b.bin", "init=..-c"]


# -- item 9: exit statuses as documented -------------------------------------------------

def test_sigterm_during_sampled_training_exits_143(tmp_path):
    """The window scorer's training stopped by SIGTERM: 143 "Terminated.", as the help
    says (was 130 "Interrupted."); the 4-gram model's: tests/test_cli.py."""
    process = subprocess.Popen([SCRIPT, "run", "--stage", "train", "--pipeline", "window",
                                "--no-tracking", "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("window:"):                # its training starts
                break
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == "Terminated." and "Traceback" not in err
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "KILLED"


@pytest.mark.parametrize("name", ["a/b", "a:b", ".", "..b", "", "  ", "a\nb"])
def test_a_registered_model_name_mlflow_refuses_is_refused_before_any_work(name, tmp_path):
    """`--register a/b` was refused by MLflow after the training."""
    done = script("run", "--stage", "load", "--no-tracking", "--register", name,
                  "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "registered model name" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_registered_model_names_refused_are_mlflows(tracking_uri):
    """What check_model_name refuses, MLflow's registry refuses; what it takes, MLflow
    takes (its public API, a real store)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from wordnet.tracking.errors import ModelNameError, check_model_name
    client = MlflowClient()
    for name in ("a/b", "a:b", ".", "..b"):
        with pytest.raises(ModelNameError):
            check_model_name(name)
        with pytest.raises(MlflowException):
            client.create_registered_model(name)
    for name in ("wordnet", "my model-1.2", "it's", "a\\b", "x..y"):
        assert check_model_name(name) == name
        client.create_registered_model(name)


def test_run_with_stderr_closed_works(tmp_path):
    """`run ... 2>&-` ended in "unexpected AttributeError" (the progress line's stream
    was None): it trains, its messages going nowhere."""
    done = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", SCRIPT, "run", "--stage",
                           "train", "--set", "early_stop=100", "--set", "epochs=1",
                           "--no-tracking", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == f"done: {tmp_path}/"
    assert (tmp_path / "model.bin").is_file()


def test_an_unreachable_store_leaves_no_folder(tmp_path):
    """The output folder was made before the store was tried, and left empty."""
    uri = f"http://127.0.0.1:{closed_port()}"
    for out in (["--out", tmp_path / "out" / "deeper"], []):   # --out, or under artifacts/
        done = script("run", "--stage", "load", "--tracking-uri", uri, *out, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "cannot reach the tracking server" in done.stderr
        assert list(tmp_path.iterdir()) == []


def test_unique_name_tells_apart_names_with_quotes_and_backslashes(tracking_uri):
    """MLflow's filter has no escape for ' or \\: such a name was never found taken."""
    import mlflow

    from wordnet.tracking.store import unique_name
    mlflow.set_experiment("names")
    for name in ("it's", "a\\b", "'", "\\", "a\\'b%_", 'say "hi"'):
        assert unique_name(name) == name
        with mlflow.start_run(run_name=name):
            pass
        assert unique_name(name) == f"{name} #2"
        with mlflow.start_run(run_name=f"{name} #2"):
            pass
        assert unique_name(name) == f"{name} #3"
    assert unique_name("its") == "its"                  # '_' matched it's: compared exactly


def test_an_unreachable_ray_head_is_said_within_seconds(tmp_path):
    """Ray retried 127.0.0.1:PORT for over two minutes without a word."""
    pytest.importorskip("ray")
    started = time.monotonic()
    done = script("sweep", "--set", "learning_rate=0.1,0.2", "--executor", "ray",
                  "--ray-address", f"127.0.0.1:{closed_port()}",
                  "--tracking-uri", f"http://127.0.0.1:{closed_port()}",
                  "--out", tmp_path / "sweep", timeout=90)
    assert time.monotonic() - started < 60
    one_line_error(done, 1, "cannot reach the Ray head at 127.0.0.1:", "ray start --head")
    assert not (tmp_path / "sweep").exists()


def test_ray_addresses_are_checked_and_loopback_is_known():
    from wordnet.errors import ConfigError
    from wordnet.sweeps.ray_executor import head_address, is_loopback
    assert head_address("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert head_address("ray://head.example:10001") == ("head.example", 10001)
    assert head_address("[::1]:6379") == ("::1", 6379)
    assert head_address("auto") is None
    for bad in ("127.0.0.1", "host:port", ":6379", "host:70000", "host:²"):
        with pytest.raises(ConfigError, match="--ray-address must be HOST:PORT"):
            head_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("192.0.2.1")


FAKE_RAY = """
import os, sys, types
ray = types.ModuleType("ray")
class Stop(Exception):
    pass
def init(**kwargs):
    print(os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
    raise Stop
ray.init = init
sys.modules["ray"] = ray
from wordnet.sweeps.ray_executor import OnRay
options = types.SimpleNamespace(ray_address=sys.argv[1], threads=1)
try:
    OnRay(types.SimpleNamespace(options=options))
except Stop:
    pass
"""


@pytest.mark.parametrize("address, setting", [("127.0.0.1:6379", "0"), ("localhost:6379", "0"),
                                              ("192.0.2.1:6379", "None")])
def test_a_loopback_head_keeps_ray_on_loopback(address, setting, tmp_path):
    """Ray turned 127.0.0.1:PORT into the machine's address unless the driver has
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: set for a loopback --ray-address only (a
    stand-in for Ray records it when ray.init is called)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    done = subprocess.run([sys.executable, "-c", FAKE_RAY, address], capture_output=True,
                          text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [setting]
