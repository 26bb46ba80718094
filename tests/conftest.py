"""Fixtures: the data and the C reference's files, found through environment variables.

WORDNET_DATA_DIR and WORDNET_REFERENCE_DIR point at them (.ci/run sets both).
Without them a test that needs them is skipped, except under CI, where it fails.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _folder(var: str) -> Path:
    value = os.environ.get(var)
    if value and Path(value).is_dir():
        return Path(value)
    message = f"{var} is not set to a folder" + (f" ({value!r})" if value else "")
    if os.environ.get("CI"):
        pytest.fail(message + ": CI needs it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _folder("WORDNET_DATA_DIR")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _folder("WORDNET_REFERENCE_DIR")


@pytest.fixture(scope="session")
def dataset(data_dir):
    from wordnet.data import load_dataset
    return load_dataset(data_dir)


@pytest.fixture(scope="session")
def reference_file(reference_dir):
    def get(name: str) -> Path:
        path = reference_dir / name
        if not path.is_file():
            pytest.fail(f"{path} is missing")
        return path
    return get


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite tracking store with MLflow's tables made (seconds of migrations, once)."""
    path = tmp_path_factory.getbasetemp() / "mlflow-empty.db"
    if not path.exists():
        from mlflow import MlflowClient
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(path.parent)
            MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background_server(command, ready_url: str, log: Path, timeout: float = 90, env=None, cwd=None):
    """Run ``command`` in a process group of its own until ``ready_url`` answers; yield
    the process, then end it and its workers.  The venv's bin comes first on PATH:
    `mlflow models serve --env-manager local` starts uvicorn from there."""
    env = {**os.environ, **(env or {}), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n"
                            f"{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer from {ready_url} within {timeout} s:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class Servers:
    """Servers on loopback for the tests: a free port, and start() that always stops."""
    free_port = staticmethod(free_port)
    start = staticmethod(background_server)


@pytest.fixture(scope="session")
def servers():
    return Servers
