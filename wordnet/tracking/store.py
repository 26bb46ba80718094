"""Where runs are logged: connecting to a tracking store (for a run, or to read a model
from it), failing within seconds when it is not there, and the names and pages of the
runs in it.

MLflow is imported by the functions that need it, never at import time.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from wordnet.fileio import atomic_create
from wordnet.tracking.errors import TrackingError, first_line

TRAINING_VIEW = "workflowType=machine_learning"   # the UI's query for its training view
UI_ADDRESS = "http://127.0.0.1:5000"    # where `mlflow ui` serves by default
PROBE_TIMEOUT = 5.0         # seconds to wait for a tracking server to answer
STORE_LOCK_TIMEOUT = 60.0   # seconds to wait for another process to set up a SQLite store

# Reading a model is one or two requests: MLflow's defaults (7 retries with backoff,
# 120 s a request) would keep `predict` waiting for minutes on a server that is gone.
READING_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# A run's requests: a server that stops answering costs one request's retries (3 tries
# of at most 10 s, 1 s and 2 s apart: under 40 s), then the run goes on untracked
# (Run.lost); MLflow's defaults made that 4-8 minutes of silence.
WRITING_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
QUIETED_LOGGER = "mlflow.store.db.utils"
RAM_FOLDER = Path("/dev/shm")   # a file system in memory (Linux): syncing a file there is free
SQLITE_FILE_MODE = 0o644        # SQLite's for a new database, less the umask


def is_server(uri: str | None) -> bool:
    """Whether ``uri`` is a tracking server's (HTTP): not a store in this process."""
    return bool(uri) and uri.startswith(("http://", "https://"))


def connect(tracking_uri: str | None, experiment: str) -> None:
    """Point MLflow at ``tracking_uri`` (else its default) and ``experiment``; fail
    within seconds when the tracking server cannot be reached.

    Pipelines started together on one SQLite store would race twice here.  On a
    new file both would create MLflow's tables: one fails, and the file keeps a
    stray ``_alembic_tmp_*`` table; so connecting to a SQLite store is done by one
    process at a time (:func:`_sqlite_lock`).  And both would create the
    experiment: MLflow then returns the other's without making it active, and
    the run lands in "Default"; setting it again by id makes it active.
    """
    if is_server(tracking_uri):
        _probe(tracking_uri)
    for name, value in WRITING_HTTP_ENV.items():
        os.environ.setdefault(name, value)                     # the user's settings win
    # MLflow logs a store's SQL errors with their traceback (60 lines for a read-only
    # database); the run says each in one line (TrackingError, Run.lost)
    logging.getLogger(QUIETED_LOGGER).setLevel(logging.CRITICAL)
    import mlflow
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = mlflow.get_tracking_uri()
    try:
        with _sqlite_lock(uri):
            _make_sqlite_store(uri)
            found = mlflow.set_experiment(experiment)
            mlflow.set_experiment(experiment_id=found.experiment_id)
    except Exception as e:                    # MLflow, SQLAlchemy and OS errors alike
        raise TrackingError(f"cannot use the tracking store {uri} "
                            f"({first_line(e)}); pass --no-tracking to run without it") from None


def _make_sqlite_store(uri: str) -> None:
    """MLflow's tables for a new SQLite store ``uri``, made in memory, then put in place.

    MLflow makes them in place through its migrations, some 270 transactions that
    SQLite each syncs to disk: 1,088 fdatasync calls, 3-4 s of waiting on a busy disk
    here for about 1 s of work.  Made by MLflow (its public client) in a scratch
    database on RAM_FOLDER, they are copied beside ``uri``'s file, synced once and
    linked in under its name, never over a store made there meanwhile.  Without
    RAM_FOLDER, or when anything fails here, MLflow makes them in place as before
    (and says what is wrong)."""
    database = _local_store(uri) if uri.startswith("sqlite:///") else None
    if database is None or database.exists() or not RAM_FOLDER.is_dir():
        return
    from mlflow import MlflowClient
    try:
        with tempfile.TemporaryDirectory(prefix="wordnet-store-", dir=RAM_FOLDER) as scratch:
            made = Path(scratch) / "mlflow.db"
            MlflowClient(f"sqlite:///{made}").search_experiments(max_results=1)
            atomic_create(database, made.read_bytes(), SQLITE_FILE_MODE)
    except Exception:                         # MLflow, SQLAlchemy and OS errors alike
        pass


def use_store_for_reading(tracking_uri: str | None) -> None:
    """Point MLflow at ``tracking_uri`` (else $MLFLOW_TRACKING_URI, else its default) to
    read a model from it, failing at once with a one-line TrackingError when the store
    is not there: a server that does not answer, or a local store that does not exist
    (MLflow would create an empty one, then say the model is not in it)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if is_server(uri):
        _probe(uri, hint="start it or fix --tracking-uri")    # before MLflow's import: 2 s
        for name, value in READING_HTTP_ENV.items():
            os.environ.setdefault(name, value)                 # the user's settings win
    import mlflow
    if uri:
        mlflow.set_tracking_uri(uri)
    store = _local_store(mlflow.get_tracking_uri())
    if store is not None and not store.exists():
        raise TrackingError(f"no tracking store at {store}: pass --tracking-uri, "
                            "or run the command where the store is")


def _local_store(uri: str) -> Path | None:
    """The file or folder of a local tracking store (sqlite:///, file:, a bare path)."""
    if uri.startswith("sqlite:///"):
        database = uri.removeprefix("sqlite:///").partition("?")[0]
        return Path(database) if database and database != ":memory:" else None
    if uri.startswith("file:"):
        return Path(urllib.request.url2pathname(uri.removeprefix("file:").removeprefix("//")))
    if "://" not in uri:
        return Path(uri)
    return None                                            # databricks, postgresql, ...


@contextmanager
def _sqlite_lock(uri: str):
    """While connecting to the SQLite store ``uri``, an exclusive lock (flock) on its
    folder, made first if missing: processes on this machine then create its tables
    and experiments one at a time.  Not on the database file: closing a descriptor
    of it would drop SQLite's own locks.  No flock (Windows), a folder that cannot
    be made or opened, or STORE_LOCK_TIMEOUT over: no lock."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    folder = None
    if fcntl and uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///").partition("?")[0])
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(database.parent, os.O_RDONLY)
        except OSError:
            pass                              # MLflow says what is wrong
    if folder is None:
        yield
        return
    try:
        deadline = time.monotonic() + STORE_LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break                     # a stuck process: go on unserialised
                time.sleep(0.05)
        yield
    finally:
        os.close(folder)                      # and with it the lock


def _probe(uri: str, hint: str = "start it, fix --tracking-uri, or pass --no-tracking"
           ) -> None:
    """Any HTTP answer means a server is there; no answer is an error now, not after
    MLflow's retries (minutes)."""
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        urllib.request.urlopen(url, timeout=PROBE_TIMEOUT).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"cannot reach the tracking server at {uri} ({reason}); "
                            f"{hint}") from None


def unique_name(name: str) -> str:
    """``name``, or ``name #2``, ``name #3``...: the first that no run of the active
    experiment has, so that runs tell apart in MLflow's lists.  MLflow's filter strings
    have no escape that a quote or a backslash survives (``\\'`` is searched for as
    is), so each is the pattern's ``_``, any one character: the runs found are a
    superset of those named ``name...``, and the names taken are compared here."""
    import mlflow
    pattern = name.replace("\\", "_").replace("'", "_")
    taken = {run.info.run_name for run in mlflow.search_runs(
        filter_string=f"attributes.run_name LIKE '{pattern}%'", output_format="list")}
    n, unique = 1, name
    while unique in taken:
        n += 1
        unique = f"{name} #{n}"
    return unique


def current_store() -> tuple[str, str]:
    """(tracking URI, experiment name) of the active run: where another process logs
    beside it."""
    import mlflow
    run = mlflow.active_run()
    return mlflow.get_tracking_uri(), mlflow.get_experiment(run.info.experiment_id).name


def page_url(experiment_id: str, run_id: str) -> str:
    """The run's page in MLflow's UI: on the tracking server, or on `mlflow ui` started
    beside a local store (its default address); in the UI's "Model training" view,
    which a fresh browser would otherwise not open (it starts in the GenAI view)."""
    import mlflow
    uri = mlflow.get_tracking_uri()
    server = uri.rstrip("/") if is_server(uri) else UI_ADDRESS
    return f"{server}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def page_of(run_id: str) -> str:
    """The page of the run ``run_id`` (of the active store) in MLflow's UI."""
    import mlflow
    return page_url(mlflow.get_run(run_id).info.experiment_id, run_id)
