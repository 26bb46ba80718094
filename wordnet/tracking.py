"""MLflow tracking: one MLflow run per pipeline run, metrics batched off the training thread.

One MLflow call per training iteration would cost more than the training
itself (3,000 calls take about 10 s here).  The training thread only puts
each point in a queue (under a microsecond); a worker thread sends them with
``log_batch``, up to 1,000 a call, no point waiting more than a second.

MLflow is imported by the functions that need it, never at import time.
"""
from __future__ import annotations

import logging
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .wheel import DISTRIBUTION, installed_wheel

MAX_BATCH = 1000            # metrics per log_batch call: MLflow's limit per request
FLUSH_INTERVAL = 1.0        # seconds a point may wait in the queue
UI_ADDRESS = "http://127.0.0.1:5000"    # where `mlflow ui` serves by default
PROBE_TIMEOUT = 5.0         # seconds to wait for a tracking server to answer
STORE_LOCK_TIMEOUT = 60.0   # seconds to wait for another process to set up a SQLite store
SERVING_CODE = Path(__file__).with_name("serving.py")


class TrackingError(Exception):
    """The tracking server cannot be reached or refused a request."""


class MetricQueue:
    """(key, value, step) points, logged in batches by a worker thread.

    ``send`` receives lists of ``(key, value, timestamp_ms, step)``.  The first
    error in the worker goes to ``on_error`` at once, and is raised, once, by the
    next :meth:`flush` or :meth:`close`; the points after it are dropped rather
    than retried.
    """

    _STOP = object()

    def __init__(self, send, max_batch: int = MAX_BATCH, interval: float = FLUSH_INTERVAL,
                 on_error=None):
        self._send, self._max_batch, self._interval = send, max_batch, interval
        self._on_error = on_error
        self._queue = queue.SimpleQueue()
        self._error: Exception | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._work, name="wordnet-metrics", daemon=True)
        self._thread.start()

    def put(self, key: str, value: float, step: int, link=(None, None, None)) -> None:
        """A point; ``link``: the (model ID, dataset name, dataset digest) it is about."""
        self._queue.put((key, float(value), int(time.time() * 1000), int(step), *link))

    def flush(self) -> None:
        """Return once every point put so far is logged."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        self._raise()

    def _raise(self):
        if self._error is not None and not self._reported:
            self._reported = True
            raise TrackingError(f"logging metrics failed: {self._error}") from self._error

    def _work(self):
        pending, deadline = [], 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None                                   # the interval is over
            if isinstance(item, tuple):
                if not pending:
                    deadline = time.monotonic() + self._interval
                pending.append(item)
                if len(pending) < self._max_batch:
                    continue
            if pending:
                self._deliver(pending)
                pending = []
            if isinstance(item, threading.Event):
                item.set()
            elif item is self._STOP:
                return

    def _deliver(self, points):
        if self._error is not None:
            return
        try:
            self._send(points)
        except Exception as e:                                 # kept for the main thread
            self._error = e
            if self._on_error is not None:
                self._on_error(e)


class NoRun:
    """What a pipeline run logs to under --no-tracking: nothing."""

    run_id = run_name = page = None

    def log_params(self, params: dict) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def log_metric(self, key: str, value: float, step: int = 0) -> None: ...
    def log_metrics(self, metrics: dict, step: int = 0, dataset=None) -> None: ...
    def log_artifacts(self, *paths: Path) -> None: ...
    def log_dataset(self, rows, name, context, source, digest) -> None: ...
    def log_model(self, checkpoint: Path, vocab: Path, example: str, name: str = "model",
                  register: str | None = None) -> None: ...
    def tag_model(self, tags: dict) -> None: ...
    def flush(self) -> None: ...


class Run(NoRun):
    """An active MLflow run (the fluent API's current run).

    The first call MLflow fails (a server gone, a store that cannot be written)
    loses the tracking: it is said once, on stderr, and the run goes on without
    it, every later call skipped rather than waited for; :attr:`lost` says why.
    """

    def __init__(self, run_id: str, run_name: str, metrics: MetricQueue, page: str):
        self.run_id, self.run_name, self.metrics = run_id, run_name, metrics
        self.page = page                  # the run's page in MLflow's UI
        self.model_id = None              # the logged model, once there is one
        self.version = None               # (registered name, version), if registered
        self.lost: str | None = None      # why MLflow stopped taking this run's records

    def lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            print(f"MLflow: {reason}; the run goes on without tracking", file=sys.stderr,
                  flush=True)

    def _call(self, what: str, call, *args, **kwargs):
        """``call(*args, **kwargs)``, unless the tracking is lost; its error loses it."""
        if self.lost is None:
            try:
                return call(*args, **kwargs)
            except Exception as e:                      # MLflow's, HTTP's, SQLite's, OS's
                self.lose(f"{what} failed ({_short(first_line(e))})")
        return None

    def log_params(self, params: dict) -> None:
        import mlflow
        self._call("logging the parameters", mlflow.log_params, params)

    def set_tags(self, tags: dict) -> None:
        import mlflow
        self._call("setting tags", mlflow.set_tags, tags)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        if self.lost is None:
            self.metrics.put(key, value, step)

    def log_metrics(self, metrics: dict, step: int = 0, dataset=None) -> None:
        """``metrics`` at ``step``, about the run's logged model (if any) and the
        ``dataset`` (name, digest) they were measured on (if given): the model's page
        in the UI then shows them, and the models list can rank by them."""
        link = (self.model_id, *(dataset or (None, None)))
        for key, value in metrics.items():
            if self.lost is None:
                self.metrics.put(key, value, step, link)

    def log_artifacts(self, *paths: Path) -> None:
        import mlflow
        for path in paths:
            self._call(f"logging {Path(path).name}", mlflow.log_artifact, str(path))

    def log_dataset(self, rows: np.ndarray, name: str, context: str, source: Path,
                    digest: str) -> None:
        """``rows`` as a run input (mlflow.data), identified by its file's SHA-256."""
        import mlflow
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        with warnings.catch_warnings():
            # MLflow registers one local-file source class under two schemes, then
            # warns that a path resolves to both.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            origin = resolve_dataset_source(str(Path(source).resolve()))
        dataset = mlflow.data.from_numpy(rows[:, :-1], targets=rows[:, -1], source=origin,
                                         name=name, digest=digest[:20])
        self._call(f"logging the {name} dataset", mlflow.log_input, dataset, context=context)

    def log_model(self, checkpoint: Path, vocab: Path, example: str, name: str = "model",
                  register: str | None = None) -> None:
        """The pyfunc model of :mod:`wordnet.serving`, named ``name`` (``runs:/ID/NAME``):
        the checkpoint, its vocabulary and the recipe beside it, with its requirements (:func:`model_requirements`); a new version of the
        registered model ``register``, if given."""
        import mlflow

        artifacts = {"checkpoint": str(checkpoint), "vocab": str(vocab)}
        recipe = checkpoint.parent / "recipe.json"     # the activation (predict.Predictor)
        if recipe.is_file():
            artifacts["recipe"] = str(recipe)
        wheel = installed_wheel()
        if wheel is not None:
            artifacts["wheel"] = str(wheel)
        info = self._call("logging the model", mlflow.pyfunc.log_model,
            name=name, python_model=str(SERVING_CODE), artifacts=artifacts,
            input_example=([example], {"top_k": 5}), registered_model_name=register,
            pip_requirements=model_requirements(wheel))
        if info is not None:
            self.model_id = info.model_id
            if register:
                self.version = (register, str(info.registered_model_version))

    def tag_model(self, tags: dict) -> None:
        """Tags on the logged model and on its registered version, if any."""
        from mlflow import MlflowClient
        if self.model_id is None:
            return
        client = MlflowClient()
        self._call("tagging the model", client.set_logged_model_tags, self.model_id, tags)
        if self.version:
            for key, value in tags.items():
                self._call("tagging the model version", client.set_model_version_tag,
                           *self.version, key, value)

    def flush(self) -> None:
        self._call("logging metrics", self.metrics.flush)


def model_requirements(wheel: Path | None) -> list[str]:
    """The logged model's requirements.txt: the wheel it carries, as a path relative to
    the model's folder (MLflow's artifacts/ subfolder: `mlflow models serve
    --env-manager virtualenv` installs from that folder, as does `pip install -r` run
    there), and the MLflow it was logged with, which wrote its MLmodel file.
    Without a wheel (an editable install or a source tree, see wordnet.wheel), the
    distribution by name and version, with a warning: that model needs the package
    from an index."""
    import mlflow

    from . import __version__
    if wheel is None:
        warnings.warn(f"wordnet does not run from an installed wheel: the logged model "
                      f"requires {DISTRIBUTION}=={__version__} from a package index "
                      f"instead of carrying its own wheel", stacklevel=2)
        package = f"{DISTRIBUTION}=={__version__}"
    else:
        package = f"artifacts/{wheel.name}"
    return [package, f"mlflow=={mlflow.__version__}"]


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
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
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
            found = mlflow.set_experiment(experiment)
            mlflow.set_experiment(experiment_id=found.experiment_id)
    except Exception as e:                    # MLflow, SQLAlchemy and OS errors alike
        raise TrackingError(f"cannot use the tracking store {uri} "
                            f"({first_line(e)}); pass --no-tracking to run without it") from None


# Reading a model is one or two requests: MLflow's defaults (7 retries with backoff,
# 120 s a request) would keep `predict` waiting for minutes on a server that is gone.
READING_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# A run's requests: a server that stops answering costs one request's retries (3 tries
# of at most 10 s, 1 s and 2 s apart: under 40 s), then the run goes on untracked
# (Run.lost); MLflow's defaults made that 4-8 minutes of silence.
WRITING_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
QUIETED_LOGGER = "mlflow.store.db.utils"
LAST_TRY_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}


def use_store_for_reading(tracking_uri: str | None) -> None:
    """Point MLflow at ``tracking_uri`` (else $MLFLOW_TRACKING_URI, else its default) to
    read a model from it, failing at once with a one-line TrackingError when the store
    is not there: a server that does not answer, or a local store that does not exist
    (MLflow would create an empty one, then say the model is not in it)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.startswith(("http://", "https://")):
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


def unique_name(name: str) -> str:
    """``name``, or ``name #2``, ``name #3``...: the first that no run of the active
    experiment has, so that runs tell apart in MLflow's lists."""
    import mlflow
    pattern = name.replace("\\", "\\\\").replace("'", "\\'")
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
    beside a local store (its default address)."""
    import mlflow
    uri = mlflow.get_tracking_uri()
    server = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{server}/#/experiments/{experiment_id}/runs/{run_id}"


def machine_tags(threads: int) -> dict[str, str]:
    """What a run's speed (and, for float32 and BLAS, its last bits) depends on besides
    its recipe: the CPU, the instruction set the kernels were built for, the threads."""
    from ._cpu import BUILT_FOR
    return {"wordnet.cpu": cpu_model(), "wordnet.isa": BUILT_FOR or "compiler default",
            "wordnet.threads": str(threads)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@contextmanager
def start_run(run_name: str | None, tags: dict | None = None, nested: bool = False,
              run_id: str | None = None):
    """An MLflow run, ended FINISHED, FAILED (an exception) or KILLED (Ctrl-C); its name
    made unique in the experiment (:func:`unique_name`).  ``run_id``: that run, again."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    try:
        if run_name and not run_id:
            run_name = unique_name(run_name)
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name,
                                  tags=tags, nested=nested)
    except Exception as e:                    # MLflow, SQLAlchemy, HTTP and OS errors alike
        raise TrackingError(f"cannot start a run in the tracking store "
                            f"{mlflow.get_tracking_uri()} ({first_line(e)}); pass "
                            "--no-tracking to run without it") from None
    run_id, client = active.info.run_id, MlflowClient()
    metrics = MetricQueue(lambda points: client.log_batch(run_id, metrics=[
        Metric(k, v, ts, step, model_id=model, dataset_name=dataset, dataset_digest=digest)
        for k, v, ts, step, model, dataset, digest in points], synchronous=True),
        on_error=lambda e: run.lose(f"logging metrics failed ({_short(first_line(e))})"))
    run = Run(run_id, active.info.run_name, metrics, page_url(active.info.experiment_id, run_id))
    try:
        yield run
    except BaseException as e:
        _end(run, getattr(e, "run_status", None)          # e.g. a pruned trial's KILLED
             or ("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"))
        raise
    _end(run, "FINISHED")


def _end(run: Run, status: str) -> None:
    """End the run with ``status`` once its metrics are sent.  When the tracking was
    lost, MLflow gets one short try (FAILED): the store already failed once, and
    waiting on it again would only delay the exit."""
    import mlflow
    try:
        run.metrics.close()
    except TrackingError:
        pass                                  # the queue's on_error has lost the run
    if run.lost is None:
        run._call("ending the run", mlflow.end_run, status)
        return
    saved = {name: os.environ.get(name) for name in LAST_TRY_HTTP_ENV}
    os.environ.update(LAST_TRY_HTTP_ENV)
    try:
        mlflow.end_run("FAILED")              # also ends it in the fluent API's stack
    except Exception:
        pass
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def git_commit() -> str:
    """The commit this package was built from: the stamp setup.py writes at build time,
    else (running from a source checkout) git's HEAD there, else "unknown"."""
    try:
        from ._commit import COMMIT
        return COMMIT
    except ImportError:                       # not built: a source checkout, or a copy
        pass
    source = Path(__file__).resolve().parent.parent
    if not (source / "pyproject.toml").is_file():
        return "unknown"                      # git here would answer for some other tree
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


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


def first_line(e: Exception) -> str:
    """An error's message in one line, for a user (MLflow's run to pages)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _short(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters: MLflow's HTTP errors run to several hundred."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
