"""Fixtures: the data and the C reference's files, from the repository alone.

The data is the copy shipped with the package, written out as a data folder
(the three CSV files rebuilt, each checked against upstream's pin).  The C
reference's small files are in tests/fixtures/ (xz, pinned in its SHA256SUMS);
c_full.bin ships with the package.
"""
import hashlib
import lzma
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
FIXTURES = Path(__file__).with_name("fixtures")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder as `data fetch` leaves it, written from the embedded copy."""
    from wordnet import embedded
    from wordnet.data import csv_bytes, load_dataset
    folder = tmp_path_factory.mktemp("data")
    for name in ("vocab.txt", "vocab_ordered.txt", "raw_sentences.txt", "model9-3000.bin"):
        (folder / name).write_bytes(embedded.read_bytes(name))
    data = load_dataset()
    for split in ("train", "valid", "test"):
        blob = csv_bytes(data.split(split))
        name = f"{split}_data.csv"
        assert hashlib.sha256(blob).hexdigest() == embedded.CSV_SHA256[name], name
        (folder / name).write_bytes(blob)
    return folder


@pytest.fixture(scope="session")
def dataset(data_dir):
    from wordnet.data import load_dataset
    return load_dataset(data_dir)


@pytest.fixture(scope="session")
def reference_file(tmp_path_factory):
    """The C reference's file ``name``: c_full.bin from the package, the others from
    tests/fixtures/, each checked against its pinned SHA-256."""
    folder = tmp_path_factory.mktemp("reference")
    pins = dict(reversed(line.split()) for line in (FIXTURES / "SHA256SUMS").read_text().splitlines())

    def get(name: str) -> Path:
        path = folder / name
        if not path.exists():
            if name == "c_full.bin":
                from wordnet import embedded
                blob = embedded.read_bytes(name)
            else:
                blob = lzma.decompress((FIXTURES / f"{name}.xz").read_bytes())
                assert hashlib.sha256(blob).hexdigest() == pins[name], f"{name}: damaged fixture"
            path.write_bytes(blob)
        return path
    return get


class Recorder:
    """A tracking run (as wordnet.tracking.Run) that remembers what it was given."""

    run_id = run_name = "recorded"
    page = "http://127.0.0.1:5000/#/experiments/0/runs/recorded"

    def __init__(self):
        self.params, self.metrics, self.artifacts, self.datasets, self.models = {}, [], [], [], []
        self.tags, self.model_tags, self.linked = {}, {}, {}

    def log_params(self, params):
        self.params.update(params)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metric(self, key, value, step=0):
        self.metrics.append((key, value, step))

    def log_metrics(self, metrics, step=0, dataset=None):
        self.metrics += [(k, v, step) for k, v in metrics.items()]
        self.linked.update({k: dataset for k in metrics})

    def log_artifacts(self, *paths):
        self.artifacts += [Path(p).name for p in paths]

    def log_dataset(self, rows, name, context, source, digest):
        self.datasets.append((name, context, len(rows), digest))

    def log_model(self, checkpoint, vocab, example, name="model", register=None):
        self.models.append((example, name, register))

    def tag_model(self, tags):
        self.model_tags.update(tags)

    def flush(self):
        pass


@pytest.fixture(scope="session")
def recording_run():
    """Makes a Recorder: a tracking run that remembers what it was given."""
    return Recorder


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
