"""Fixtures: the data and the C reference's files, from the repository alone.

The data is the copy shipped with the package, written out as a data folder
(the three CSV files rebuilt, each checked against upstream's pin).  The C
reference's small files are in tests/fixtures/ (xz, pinned in its SHA256SUMS);
c_full.bin ships with the package.
"""
import functools
import hashlib
import http.server
import lzma
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).with_name("fixtures")

# Ray, the same in the heads and in the drivers (ray.init in a test or in its subprocesses,
# which inherit these); Ray reads them when imported, so they are set here, before any test
# imports ray.
# - On loopback only: Ray turns 127.0.0.1 (as --node-ip-address, or in a driver's
#   ray.init(address="127.0.0.1:PORT")) into the machine's routable address unless this is
#   "0", and then 127.0.0.1 is the node's address (the name is about Windows and macOS, where
#   that is the default).
# - Token authentication decided here, not by whether ~/.ray/auth_token exists: a local
#   ray.init() writes that file, `ray start --head` then requires the token, and a driver
#   given an address does not send it unless RAY_AUTH_MODE=token ("InvalidAuthToken").
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Ctrl-C as a terminal delivers it: a shell starts a background job (`pytest &`, a CI
# script run with `&`) with SIGINT ignored, which every command a test starts inherits,
# and the tests that send a command SIGINT (a training, a sweep, the server) then wait in
# vain.  A handler of ours is not inherited: the commands get the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder as `data fetch` leaves it, written from the embedded copy."""
    from wordnet.data import embedded
    from wordnet.data.dataset import csv_bytes, load_dataset
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


# A real corpus no one here wrote: the King James Bible (1611, out of copyright), as
# Debian's bible-kjv prints it from bible-kjv-text (version 4.38), a verse a line.
KJV_COMMAND = ["bible", "-l100000", "gen1:1-rev22:21"]
KJV_SHA256 = "6f74f5589333c56c263963e6347dba662bae2d96861302e690aaae0b4a855eda"


@pytest.fixture(scope="session")
def kjv(tmp_path_factory) -> Path:
    """The King James Bible as a text file (`apt-get install bible-kjv`: .ci/run does)."""
    if not shutil.which("bible"):
        message = "no `bible` program: apt-get install bible-kjv"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    path = tmp_path_factory.mktemp("kjv") / "kjv.txt"
    with open(path, "wb") as out:
        subprocess.run(KJV_COMMAND, stdout=out, stdin=subprocess.DEVNULL, check=True, timeout=60)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == KJV_SHA256, "another KJV text"
    return path


@pytest.fixture(scope="session")
def dataset(data_dir):
    from wordnet.data.dataset import load_dataset
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
                from wordnet.data import embedded
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
    version = lost = model_id = None      # no registered version, tracking not lost
    aliases, continued = (), False        # a new run

    def __init__(self):
        self.params, self.metrics, self.artifacts, self.datasets, self.models = {}, [], [], [], []
        self.tags, self.model_tags, self.linked, self.registered = {}, {}, {}, []

    def log_params(self, params):
        self.params.update(params)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metric(self, key, value, step=0):
        self.metrics.append((key, value, step))

    def log_metrics(self, metrics, step=0, dataset=None):
        self.metrics += [(k, v, step) for k, v in metrics.items()]
        self.linked.update({k: dataset for k in metrics})

    def log_artifacts(self, *paths, folder=None):
        self.artifacts += [f"{folder}/{Path(p).name}" if folder else Path(p).name for p in paths]

    def log_dataset(self, rows, name, context, source, digest):
        self.datasets.append((name, context, len(rows), digest))

    def log_model(self, checkpoint, vocab, example, name="model"):
        self.models.append((example, name))
        self.model_id = name

    def register(self, name, description, select_by, reproduced):
        self.registered.append((name, description, select_by, reproduced))

    def tag(self, name, default=""):
        return default

    def steps(self, key):
        return set()

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


@pytest.fixture
def tracking_uri(empty_store, tmp_path, monkeypatch):
    """A fresh local store, current for MLflow; run artifacts go under tmp_path."""
    import mlflow
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def mlflow_server(empty_store, tmp_path, servers):
    """`mlflow server` on a free loopback port; yields its URL, then stops it."""
    shutil.copy(empty_store, tmp_path / "server.db")
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    with servers.start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                        "--artifacts-destination", str(tmp_path / "server-artifacts")],
                       f"{url}/health", tmp_path / "server.log", timeout=120,
                       env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=tmp_path):
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background_server(command, ready_url: str | Callable[[], bool], log: Path, timeout: float = 90,
                      env=None, cwd=None):
    """Run ``command`` in a process group of its own until ``ready_url`` answers (or,
    if it is a function, until it returns true); yield the process, then end it and its
    workers.  The venv's bin comes first on PATH: `mlflow models serve --env-manager
    local` starts uvicorn from there."""
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
            if callable(ready_url):                   # a server that is not HTTP (Ray's head)
                if ready_url():
                    break
            else:
                try:
                    with urllib.request.urlopen(ready_url, timeout=2):
                        break
                except OSError:
                    pass
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


def _stamp(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns                  # a save replaces the file (a rename)


@pytest.fixture(scope="session")
def fresh_save():
    """``wait(process, state)``: returns as soon as the training ``process`` has written
    its resume state ``state`` anew (a periodic save just finished: checkpoint and
    state a pair), for the test to SIGKILL it then.  A kill between a save's two
    writes leaves a pair that --resume refuses, by design; a test that kills at a
    random moment fails when it lands there (seen once in CI's load)."""
    def wait(process, state: Path, timeout: float = 120) -> None:
        deadline, before = time.monotonic() + timeout, _stamp(state)
        while _stamp(state) in (None, before):
            assert process.poll() is None, f"the training ended before a save ({state})"
            assert time.monotonic() < deadline, f"no save of {state} within {timeout} s"
            time.sleep(0.005)
    return wait


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A Ray head on loopback with 2 CPUs for the session: its address, "127.0.0.1:PORT".

    `ray start --head --block` in a process group of its own (background_server): the
    command stays until SIGTERM, then stops the head's processes (GCS, raylet, ...); the
    workers, which the raylet starts, end with it.  Ray's temporary folder is a short one
    (its sockets are <temp-dir>/session_<time>_<pid>/sockets/plasma_store, and a Unix
    socket's path has at most 107 bytes), and the head runs there, not in the repository:
    a task runs in the raylet's folder, and `python -c "import wordnet"` there would find
    the source tree (no compiled kernels) before the installed package."""
    pytest.importorskip("ray")                # CI installs the ray extra: never skipped there
    folder = tmp_path_factory.mktemp("ray")
    short = None
    if len(str(folder)) > 40:                 # leave ~65 bytes for Ray's part of the path
        folder = short = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    log = folder / "head.log"
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(port), "--num-cpus", "2", "--disable-usage-stats",
               "--include-dashboard=false", "--temp-dir", str(folder)]
    # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: on SIGTERM the head stops at once (about 4 s)
    # instead of draining for up to 30 s while a task still runs.
    # Loopback and no token: os.environ, set above, as in the drivers.
    env = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}

    def started() -> bool:                    # printed once the GCS and the raylet are up
        return "Ray runtime started" in log.read_text(errors="replace")

    try:
        with background_server(command, started, log, timeout=120, env=env, cwd=folder):
            yield f"127.0.0.1:{port}"
    finally:
        if short is not None:
            shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def upstream(data_dir, tmp_path):
    """A loopback HTTP server laid out like the upstream repository; yields its URL."""
    root = tmp_path / "upstream"
    from wordnet.data import fetch
    for name, path in fetch.UPSTREAM.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).symlink_to(data_dir / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
