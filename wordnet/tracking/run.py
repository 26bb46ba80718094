"""A pipeline run's MLflow run: what it logs (params, tags, metrics, files, datasets,
its model and its version in the registry), the tracking lost on the first failure
without stopping the training, and the run's end (FINISHED, FAILED or KILLED).

One MLflow run per trained model: a later command on the model (a stage run alone,
``--resume``, ``log``) continues its run (:func:`start_run` with ``run_id``), and a
run its process left RUNNING (killed, or its store lost) is ended by the next
command on its folder (:func:`end_orphan`).

MLflow is imported by the functions that need it, never at import time.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from wordnet.tracking.errors import TrackingError, first_line, short
from wordnet.tracking.logged_model import SERVING_CODE, model_artifacts
from wordnet.tracking.metrics import MAX_BATCH, SEND_AT, MetricQueue
from wordnet.tracking.noise import silently
from wordnet.tracking.store import is_server, page_url, unique_name

if TYPE_CHECKING:
    import numpy as np

ENDED_TAG = "wordnet.ended_because"   # why the next command ended a run left RUNNING
# A store refusing a row another process inserted first: SQLite's and PostgreSQL's
# words, MySQL's, and SQLAlchemy's class (through a tracking server: in its message)
RACED = re.compile(r"unique constraint|duplicate entry|IntegrityError", re.IGNORECASE)
# The one try to end a run whose tracking was lost: the store already failed once.
LAST_TRY_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}


class NoRun:
    """What a pipeline run logs to under --no-tracking: nothing."""

    run_id = run_name = page = version = model_id = None
    aliases = ()
    continued = False                     # an earlier command's run, continued
    lost = None
    params: dict = {}

    def tag(self, name: str, default: str = "") -> str:
        """The run's tag ``name`` as the run had it when this command took it."""
        return default

    def steps(self, key: str) -> set[int]:
        """The steps at which the run has the metric ``key`` (a run continued)."""
        return set()

    def log_params(self, params: dict) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def log_metric(self, key: str, value: float, step: int = 0) -> None: ...
    def log_metrics(self, metrics: dict, step: int = 0, dataset=None) -> None: ...
    def log_artifacts(self, *paths: Path, folder: str | None = None) -> None: ...
    def log_dataset(self, rows, name, context, source, digest) -> None: ...
    def log_model(self, checkpoint: Path, vocab: Path, example: str,
                  name: str = "model") -> None: ...
    def register(self, name: str, description: str, select_by: tuple | None,
                 reproduced: bool) -> None: ...
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
        self.aliases: list[str] = []      # the registry aliases the version got
        self.tags: dict[str, str] = {}    # of a run continued, when it was taken
        self.params: dict[str, str] = {}  # ... and its parameters, which cannot change
        self.lost: str | None = None      # why MLflow stopped taking this run's records

    def tag(self, name: str, default: str = "") -> str:
        return self.tags.get(name, default)

    def steps(self, key: str) -> set[int]:
        from mlflow import MlflowClient
        if not self.continued:
            return set()
        history = self._call(f"reading {key}", MlflowClient().get_metric_history,
                             self.run_id, key)
        return {m.step for m in history or ()}

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
                self.lose(f"{what} failed ({short(first_line(e))})")
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

    def log_artifacts(self, *paths: Path, folder: str | None = None) -> None:
        """``paths`` as the run's files, at its root or in ``folder``."""
        import mlflow
        for path in paths:
            self._call(f"logging {Path(path).name}", mlflow.log_artifact, str(path), folder)

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
        self._call(f"logging the {name} dataset", once_more_if_raced,
                   lambda: mlflow.log_input(dataset, context=context))

    def log_model(self, checkpoint: Path, vocab: Path, example: str,
                  name: str = "model") -> None:
        """The pyfunc model of :mod:`wordnet.serving.pyfunc`, named ``name``
        (``runs:/ID/NAME``), with what :func:`model_artifacts` gives it: a logged model
        made for this run (its source, with the run's parameters), written from a
        thread that has no active run, then declared the run's output.  Written within
        the run, MLflow would read back the whole history of every metric to link to
        the model the points at its step (0), of which a run has none before its
        model: 1.5 s for the reference recipe's 36,000 training points."""
        import mlflow
        from mlflow.entities import LoggedModelOutput
        artifacts, requirements = model_artifacts(checkpoint, vocab)

        def log() -> str:
            client = mlflow.MlflowClient()
            run = client.get_run(self.run_id)
            model = mlflow.initialize_logged_model(
                name, source_run_id=self.run_id, params=run.data.params,
                experiment_id=run.info.experiment_id)
            with ThreadPoolExecutor(1, thread_name_prefix="wordnet-model") as elsewhere:
                elsewhere.submit(silently(mlflow.pyfunc.log_model), name=name,
                                 python_model=str(SERVING_CODE), artifacts=artifacts,
                                 input_example=([example], {"top_k": 5}),
                                 pip_requirements=requirements,
                                 model_id=model.model_id).result()
            client.log_outputs(self.run_id, models=[LoggedModelOutput(model.model_id, step=0)])
            return model.model_id

        self.model_id = self._call("logging the model", log) or self.model_id

    def register(self, name: str, description: str, select_by: tuple | None,
                 reproduced: bool) -> None:
        """The run's logged model as a version of ``name`` (one per run), described, and
        aliased (:func:`wordnet.tracking.model_registry.register`); :attr:`version` and
        :attr:`aliases` say what it got."""
        from wordnet.tracking.model_registry import register
        if self.model_id is None:
            return
        registered = self._call("registering the model", register, name, self.run_id,
                                self.model_id, description, select_by, reproduced)
        if registered is not None:
            self.version, self.aliases = (name, registered[0]), registered[1]

    def tag_model(self, tags: dict) -> None:
        """Tags on the logged model, and on the versions an earlier command on this run
        registered (e.g. a reproduction that failed later); a version registered at
        the end of this command gets them then."""
        from mlflow import MlflowClient
        if self.model_id is None:
            return
        client = MlflowClient()
        self._call("tagging the model", client.set_logged_model_tags, self.model_id, tags)
        if self.continued:
            for version in self._call("finding the model's versions",
                                      client.search_model_versions,
                                      f"run_id = '{self.run_id}'") or ():
                for key, value in tags.items():
                    self._call("tagging the model version", client.set_model_version_tag,
                               version.name, version.version, key, value)

    def flush(self) -> None:
        self._call("logging metrics", self.metrics.flush)


def once_more_if_raced(call):
    """``call()``, and once more if the store refused it as a duplicate (RACED).  Two
    runs logging a dataset new to the experiment at once (a sweep's trials) both find
    it missing, and MLflow's store inserts it for both: the second insert breaks the
    store's uniqueness (``UNIQUE constraint failed: datasets.experiment_id, ...``).
    Once the other run's insert is in, the same call finds the dataset and links it."""
    try:
        return call()
    except Exception as e:                      # MLflow's, HTTP's, the database's
        if not RACED.search(str(e)):
            raise
    return call()


@contextmanager
def start_run(run_name: str | None, tags: dict | None = None, nested: bool = False,
              run_id: str | None = None):
    """An MLflow run, ended FINISHED, FAILED (an exception) or KILLED (Ctrl-C); its name
    made unique in the experiment (:func:`unique_name`).  ``run_id``: that run again,
    in its own experiment, its name and logged model kept (see :func:`continuable`)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client, model_id, found = MlflowClient(), None, None
    try:
        if run_id:
            found = client.get_run(run_id)
            # MLflow starts a run again only in its own experiment
            mlflow.set_experiment(experiment_id=found.info.experiment_id)
            model_id = _logged_model(found.info.experiment_id, run_id)
        elif run_name:
            run_name = unique_name(run_name)
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name,
                                  tags=tags, nested=nested)
    except Exception as e:                    # MLflow, SQLAlchemy, HTTP and OS errors alike
        raise TrackingError(f"cannot start a run in the tracking store "
                            f"{mlflow.get_tracking_uri()} ({first_line(e)}); pass "
                            "--no-tracking to run without it") from None
    run_id = active.info.run_id
    # a store in this process (SQLite, a folder) writes the points on our cores: short
    # calls (metrics.SEND_AT); a server writes them on its own, and fewer requests serve
    # it better
    server = is_server(mlflow.get_tracking_uri())
    metrics = MetricQueue(lambda points: client.log_batch(run_id, metrics=[
        Metric(k, v, ts, step, model_id=model, dataset_name=dataset, dataset_digest=digest)
        for k, v, ts, step, model, dataset, digest in points], synchronous=True),
        on_error=lambda e: run.lose(f"logging metrics failed ({short(first_line(e))})"),
        send_at=MAX_BATCH if server else SEND_AT)
    run = Run(run_id, active.info.run_name, metrics, page_url(active.info.experiment_id, run_id))
    if found is not None:
        if ENDED_TAG in found.data.tags:            # a killed command's run, going on now
            run._call("untagging the run", client.delete_tag, run_id, ENDED_TAG)
        run.continued, run.model_id = True, model_id
        run.tags, run.params = dict(found.data.tags), dict(found.data.params)
    try:
        yield run
    except BaseException as e:
        _end(run, getattr(e, "run_status", None)          # e.g. a pruned trial's KILLED
             or ("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"))
        raise
    _end(run, "FINISHED")


def continuable(run_id: str | None) -> str | None:
    """``run_id`` if the active store holds that run (a later command on its model
    continues it), else None: no ID, or a run of another store."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    if not run_id:
        return None
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return None
    return run_id if run.info.lifecycle_stage == "active" else None


def end_orphan(run_id: str, why: str) -> bool:
    """End ``run_id`` KILLED, with ``why`` in its tags and description, if the active
    store holds it RUNNING: its process stopped without ending it (killed, or its
    store lost).  Whether it did."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False                                # not in this store
    if run.info.status != "RUNNING":
        return False
    client.set_tag(run_id, ENDED_TAG, why)
    client.set_terminated(run_id, "KILLED")
    return True


def _logged_model(experiment_id: str, run_id: str) -> str | None:
    """The ID of the last model ``run_id`` logged, if any."""
    import mlflow
    models = mlflow.search_logged_models(experiment_ids=[experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'",
                                         order_by=[{"field_name": "creation_time",
                                                    "ascending": False}],
                                         output_format="list")
    return models[0].model_id if models else None


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
