"""wordnet.tracking (store, run, metrics): batched metrics off the training thread, run statuses, and the whole
pipeline against a real `mlflow server` on loopback."""
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wordnet import tracking
from wordnet.tracking import MetricQueue, TrackingError, store

BIN = Path(sys.executable).parent



# -- the metric queue -----------------------------------------------------------------------

def test_points_go_in_order_in_batches_of_at_most_max_batch():
    sent = []
    metrics = MetricQueue(sent.append, max_batch=10, interval=60)
    for i in range(25):
        metrics.put("train_ce", i, i + 1)
    metrics.flush()
    assert [len(batch) for batch in sent] == [10, 10, 5]
    assert [(p[1], p[3]) for batch in sent for p in batch] == [(i, i + 1) for i in range(25)]
    metrics.close()


def test_a_call_sends_whole_send_ats_and_the_rest_waits_for_the_interval_or_a_flush():
    sent, calls = [], threading.Semaphore(0)
    metrics = MetricQueue(lambda points: (sent.append(len(points)), calls.release()),
                          send_at=10, interval=60)
    for i in range(25):
        metrics.put("train_ce", 1.0, i + 1)
    while sum(sent) < 20:
        assert calls.acquire(timeout=10)
    time.sleep(0.2)                                       # no call for the 5 left
    assert sum(sent) == 20 and all(n % 10 == 0 for n in sent), sent
    metrics.flush()
    assert sum(sent) == 25 and sent[-1] == 5, sent
    metrics.close()


def test_the_worker_is_woken_for_a_call_not_for_every_point(monkeypatch):
    """Woken at every point, the worker took the GIL from the training thread's callbacks
    a thousand times a second, and the governor put the training on one thread."""
    wakes = []

    class Counted(threading.Event):
        def set(self):
            wakes.append(1)
            super().set()

    monkeypatch.setattr(threading, "Event", Counted)
    sent = []
    metrics = MetricQueue(sent.append, send_at=100, interval=60)
    monkeypatch.undo()
    for i in range(1_000):
        metrics.put("train_ce", 1.0, i + 1)
    metrics.flush()
    assert sum(map(len, sent)) == 1_000
    assert len(wakes) <= 1_000 // 100 + 3, len(wakes)     # a batch's first point and its last
    metrics.close()


def test_points_put_while_the_worker_counts_are_sent_before_close_returns():
    """The worker counts the points waiting, and meanwhile the training puts more and
    closes: those are sent too (CI lost a backfilled run's last metrics so)."""
    counting, resume = threading.Event(), threading.Event()

    class Counted(collections.deque):
        def __len__(self):
            n = super().__len__()
            if threading.current_thread().name == "wordnet-metrics" and not counting.is_set():
                counting.set()                      # the count taken, the worker held
                resume.wait(10)
            return n

    sent = []
    metrics = MetricQueue(lambda points: sent.extend(points), send_at=100, interval=60)
    metrics._points = Counted()
    metrics.put("train_ce", 1.0, 1)
    assert counting.wait(10)
    for i in range(2, 11):
        metrics.put("train_ce", 1.0, i)
    closing = threading.Thread(target=metrics.close)
    closing.start()
    time.sleep(0.1)                                 # the stop requested
    resume.set()
    closing.join(10)
    assert [p[3] for p in sent] == list(range(1, 11))


def test_points_wait_at_most_the_interval():
    sent, arrived = [], threading.Event()
    metrics = MetricQueue(lambda points: (sent.append(points), arrived.set()), interval=0.05)
    metrics.put("valid_ce", 1.5, 7)
    assert arrived.wait(timeout=10)
    assert [(k, v, step) for k, v, _, step, *_ in sent[0]] == [("valid_ce", 1.5, 7)]
    metrics.close()


def test_an_error_in_the_worker_surfaces_on_the_training_thread():
    def send(points):
        raise ConnectionError("server gone")
    metrics = MetricQueue(send, interval=0.01)
    metrics.put("train_ce", 1.0, 1)
    with pytest.raises(TrackingError, match="logging metrics failed: server gone"):
        metrics.flush()
    metrics.put("train_ce", 1.0, 2)                           # dropped, not raised again
    metrics.close()


def test_putting_a_point_costs_microseconds():
    """The training thread's whole share of tracking: 5 % of a 1 ms update is 50 µs."""
    metrics = MetricQueue(lambda points: time.sleep(0.001), interval=0.1)
    start = time.perf_counter()
    for i in range(30_000):
        metrics.put("train_ce", 2.5, i)
    per_point = (time.perf_counter() - start) / 30_000
    metrics.close()
    assert per_point < 20e-6


# -- connecting and runs --------------------------------------------------------------------

def test_an_unreachable_server_fails_in_seconds(servers):
    start = time.monotonic()
    with pytest.raises(TrackingError, match="cannot reach the tracking server.*--no-tracking"):
        tracking.connect(f"http://127.0.0.1:{servers.free_port()}", "x")
    assert time.monotonic() - start < 10


def test_a_server_that_never_answers_fails_in_seconds(monkeypatch):
    """A port that accepts connections (the kernel's backlog) and never answers."""
    monkeypatch.setattr(store, "PROBE_TIMEOUT", 1.0)      # read where it is used
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        start = time.monotonic()
        with pytest.raises(TrackingError, match="cannot reach the tracking server .*timed out"
                                                ".*--no-tracking"):
            tracking.connect(f"http://127.0.0.1:{listening.getsockname()[1]}", "x")
        assert time.monotonic() - start < 5


def test_runs_started_together_on_a_store_whose_folder_is_missing_all_land(tmp_path):
    """Three processes at once on sqlite:///new/mlflow.db, new/ not there yet: each
    creates the tables under the lock (without it, all three failed with "table
    _alembic_tmp_tags already exists" and the store stayed broken)."""
    from mlflow import MlflowClient
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    code = ("import sys; from wordnet import tracking; tracking.connect(sys.argv[1], 'cold'); "
            "run = tracking.start_run('r'); r = run.__enter__(); r.log_params({'a': 1}); "
            "run.__exit__(None, None, None)")
    starts = [subprocess.Popen([sys.executable, "-c", code, uri], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0], outputs
    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "cold"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}


def test_a_new_sqlite_store_is_made_in_memory_then_linked_in(tmp_path, monkeypatch):
    """MLflow's migrations (a thousand disk syncs) run on a scratch database in RAM_FOLDER;
    the store made is put in place whole, with SQLite's file mode, and MLflow takes it
    as its own: the schema current, the experiment made, runs logged."""
    import mlflow
    from mlflow import MlflowClient

    from wordnet.fileio import umask
    ram, linked, atomic_create = tmp_path / "ram", [], store.atomic_create
    ram.mkdir()

    def spied(path, data, mode):
        linked.append((path, len(data)))
        return atomic_create(path, data, mode)
    monkeypatch.setattr(store, "RAM_FOLDER", ram)
    monkeypatch.setattr(store, "atomic_create", spied)
    database = tmp_path / "new" / "mlflow.db"
    try:
        tracking.connect(f"sqlite:///{database}", "made")
        with tracking.start_run("r") as run:
            run.log_params({"a": 1})
    finally:
        mlflow.set_tracking_uri(None)
    assert linked == [(database, database.stat().st_size)]
    assert database.stat().st_mode & 0o777 == 0o644 & ~umask()
    assert list(ram.iterdir()) == []                              # the scratch is gone
    client = MlflowClient(f"sqlite:///{database}")
    [experiment] = [e for e in client.search_experiments() if e.name == "made"]
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.data.params == {"a": "1"} and logged.info.status == "FINISHED"


def test_a_store_that_exists_or_no_memory_folder_leaves_mlflow_to_it(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"")                      # e.g. made by another program meanwhile
    store._make_sqlite_store(f"sqlite:///{existing}")
    assert existing.read_bytes() == b""
    monkeypatch.setattr(store, "RAM_FOLDER", tmp_path / "no-such-folder")
    database = tmp_path / "plain.db"
    try:
        tracking.connect(f"sqlite:///{database}", "plain")          # MLflow makes it in place
    finally:
        mlflow.set_tracking_uri(None)
    assert "plain" in {e.name for e in MlflowClient(f"sqlite:///{database}").search_experiments()}


RACE = ("BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
        "datasets.experiment_id, datasets.name, datasets.digest")


@pytest.mark.parametrize("error, calls, lost", [
    (RACE, 2, False),                                   # a sweep's trial beside: again
    ("API request to endpoint /api/2.0/mlflow/runs/log-inputs failed: connection refused",
     1, True)], ids=["raced", "refused"])               # anything else: lost at once
def test_a_dataset_another_run_logged_at_the_same_moment_is_logged_again(
        tracking_uri, monkeypatch, error, calls, lost):
    """Two trials logging a dataset new to the experiment at once: the store's second
    insert breaks its uniqueness (seen in CI, a Ray sweep on a tracking server); logged
    again, it links the dataset the other made.  Other errors are not tried again."""
    import mlflow
    real, tries = mlflow.log_input, []

    def log_input(*args, **kwargs):
        tries.append(1)
        if len(tries) == 1:
            raise mlflow.exceptions.MlflowException(error)
        return real(*args, **kwargs)
    tracking.connect(None, "raced")
    monkeypatch.setattr(mlflow, "log_input", log_input)
    rows = np.arange(40, dtype=np.int32).reshape(10, 4)
    with tracking.start_run("r") as run:
        run.log_dataset(rows, "course-train", "training", tracking_uri.removeprefix(
            "sqlite:///"), "ab" * 32)
    assert len(tries) == calls and (run.lost is not None) == lost
    inputs = mlflow.get_run(run.run_id).inputs.dataset_inputs
    assert [d.dataset.name for d in inputs] == ([] if lost else ["course-train"])


def test_a_store_that_refuses_a_new_run_is_a_one_line_error(tracking_uri, monkeypatch):
    """A read-only database reads (the experiment is found), then refuses the run."""
    import mlflow

    def read_only(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("(sqlite3.OperationalError) attempt to write "
                                                "a readonly database\n[SQL: INSERT ...]")
    tracking.connect(None, "read-only")
    monkeypatch.setattr(mlflow, "start_run", read_only)
    with pytest.raises(TrackingError, match=r"^cannot start a run in the tracking store sqlite:"
                       r".*\(\(sqlite3.OperationalError\) attempt to write a readonly "
                       r"database\); pass --no-tracking to run without it$"):
        with tracking.start_run("r"):
            pass


def test_an_unusable_store_fails_with_a_hint(tmp_path):
    import mlflow
    (tmp_path / "file").write_text("")
    try:
        with pytest.raises(TrackingError, match="cannot use the tracking store.*--no-tracking"):
            tracking.connect(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}", "x")
    finally:
        mlflow.set_tracking_uri(None)


def test_an_experiment_another_process_just_made_is_the_one_used(tracking_uri, monkeypatch):
    """Two processes find no experiment and both create it: MLflow returns the winner's
    to the loser without making it active, so its runs went to "Default"."""
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient
    made = MlflowClient().create_experiment("raced")            # by "the other process"
    real, calls = TrackingServiceClient.get_experiment_by_name, []

    def not_yet(self, name):                                    # looked before it was made
        calls.append(name)
        return None if len(calls) == 1 else real(self, name)

    monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name", not_yet)
    tracking.connect(None, "raced")
    assert calls == ["raced", "raced"]                          # the race did happen
    with tracking.start_run("r") as run:
        pass
    assert MlflowClient().get_run(run.run_id).info.experiment_id == made


@pytest.mark.parametrize("error, status", [(None, "FINISHED"), (RuntimeError, "FAILED"),
                                           (KeyboardInterrupt, "KILLED")])
def test_a_run_ends_with_the_status_of_what_happened(tracking_uri, error, status):
    from mlflow import MlflowClient
    tracking.connect(None, "statuses")
    with pytest.raises(error) if error else open(os.devnull) as _:
        with tracking.start_run("r") as run:
            for step in range(1, 2_001):
                run.log_metric("train_ce", 1.0 / step, step)
            run.log_params({"a": 1})
            if error:
                raise error()
    client = MlflowClient()
    assert client.get_run(run.run_id).info.status == status
    history = client.get_metric_history(run.run_id, "train_ce")
    assert sorted(m.step for m in history) == list(range(1, 2_001))


def test_the_model_is_logged_for_its_run_without_reading_back_the_curves(tracking_uri, tmp_path,
                                                                         monkeypatch):
    """The logged model's source is the run, it is the run's output with the run's
    parameters, runs:/RUN/NAME loads it; and logging it reads no metric's history
    (MLflow's own linking, within a run, reads every curve whole: a second for the
    reference recipe's 33,000 points)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus

    from wordnet.data import embedded
    from wordnet.data.dataset import Vocabulary
    checkpoint, vocab = tmp_path / "model.bin", tmp_path / "vocab.txt"
    checkpoint.write_bytes(embedded.read_bytes("c_full.bin"))
    vocab.write_text("\n".join(Vocabulary.embedded().words) + "\n")
    tracking.connect(None, "logged-model")
    with tracking.start_run("r") as run:
        run.log_params({"learning_rate": 0.1})
        for step in range(1, 1_001):
            run.log_metric("train/ce_running_mean", 5.0, step)
        run.flush()
        read = []
        with monkeypatch.context() as patched:
            patched.setattr(MlflowClient, "get_metric_history",
                            lambda self, *args, **kwargs: read.append(args) or [])
            run.log_model(checkpoint, vocab, "have a good", "r-model")
    assert read == [] and run.lost is None
    client = MlflowClient()
    logged = client.get_logged_model(run.model_id)
    assert logged.source_run_id == run.run_id and logged.name == "r-model"
    assert logged.status == LoggedModelStatus.READY and logged.params == {"learning_rate": "0.1"}
    outputs = client.get_run(run.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(run.model_id, 0)]
    [answer] = mlflow.pyfunc.load_model(f"runs:/{run.run_id}/r-model").predict(
        ["have a good"], {"top_k": 1})
    assert [p.word for p in answer.predictions] == ["time"]


@pytest.mark.parametrize("where", ["plots and model logging", "validate", "test", "reproduce"])
def test_sigterm_in_any_stage_ends_the_run_killed_and_recorded(where, tracking_uri, data_dir,
                                                               tmp_path, monkeypatch):
    """SIGTERM outside the training loop used to kill the process at once: the MLflow
    run stayed RUNNING for good and run.json was stale."""
    import signal

    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    from wordnet.runs.fourgram_stages import FourGramStages

    def terminated(*args, **kwargs):                  # as if `kill PID` came now
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)                                # never reached: the signal raises
        raise AssertionError("SIGTERM did not stop the stage")

    target = {"plots and model logging": (tracking.Run, "log_model"),
              "validate": (FourGramStages, "validate"),    # the stages are the kind's
              "test": (FourGramStages, "test"),
              "reproduce": (FourGramStages, "reproduce")}[where]
    monkeypatch.setattr(*target, terminated)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "backend=exact", "--set", "early_stop=20",
        "--data-dir", str(data_dir), "--out", str(out), "--no-register"])
    assert result.exit_code == 143, result.output
    assert "Terminated." in result.output
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "KILLED"
    run = MlflowClient().get_run(manifest["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert (out / "model.bin").is_file()              # the training it did is kept
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # handler given back


# -- end to end -----------------------------------------------------------------------------

def test_the_quick_pipeline_against_a_real_mlflow_server(mlflow_server, data_dir, tmp_path):
    import mlflow
    from mlflow import MlflowClient
    out = tmp_path / "out"
    # The quick recipe, cut to 1,500 updates so that the suite stays fast: the reproduce
    # stage does not hold so short a run to the unigram baseline (reached at about 1,100).
    done = subprocess.run(
        [str(BIN / "wordnet-pipeline"), "run", "--stage", "all", "--pipeline", "quick",
         "--set", "backend=exact", "--set", "early_stop=1500", "--set", "validation_period=500",
         "--data-dir", str(data_dir), "--out", str(out), "--tracking-uri", mlflow_server,
         "--experiment", "end-to-end"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads((out / "run.json").read_text())["mlflow_run_id"]
    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    # what the UI's run list and run page show: a name that says what the run is, and
    # the recipe's description with the overrides
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "stop=1500 every=500 · quick · exact"
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("The quick recipe, whose description reads: One-epoch smoke run")
    assert "early_stop=1500 (recipe: epoch end)" in note
    assert run.data.tags["wordnet.override.validation_period"] == "500"
    assert run.data.tags["wordnet.backend"] == "exact" and run.data.tags["wordnet.threads"]
    assert (f"MLflow run 'stop=1500 every=500 · quick · exact': {mlflow_server}/#/experiments/"
            f"{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning") in done.stdout

    params = run.data.params
    assert params["learning_rate"] == "0.1" and params["backend"] == "exact"
    assert params["early_stop"] == "1500" and params["init"] == "c-reference"
    assert params["recipe"] == "quick" and params["wordnet_version"]
    commit = tracking.git_commit()                     # the installed package's build stamp
    assert params["git_commit"] == run.data.tags["mlflow.source.git.commit"] == commit
    assert run.data.tags["wordnet.data.sha256.train_data.csv"].startswith("5f8816ab")
    assert not any(key.startswith("data.") for key in params)

    # the curves: the C program's running mean at every iteration, the minibatch CEs' means,
    # the validations; all at steps >= 1, which the UI draws as lines (not the epoch: one
    # epoch would be a line of one dot)
    train_ce = client.get_metric_history(run_id, "train/ce_running_mean")
    history = json.loads((out / "history.json").read_text())
    assert sorted((m.step, m.value) for m in train_ce) == list(enumerate(history["train_ce"], 1))
    assert len(train_ce) == 1501
    means = sorted(m.step for m in client.get_metric_history(run_id, "train/batch_ce_mean10"))
    assert means == list(range(10, 1501, 10)) + [1501]          # every 10, and the last
    assert client.get_metric_history(run_id, "train/epoch") == []
    valid_steps = sorted(m.step for m in client.get_metric_history(run_id, "valid/ce"))
    assert valid_steps == [501, 1001, 1501]                    # periodic, then the validate stage

    # the final figures: one point each, at step 0, which the UI draws as bars
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"valid/final_ce", "valid/perplexity", "valid/top1", "valid/top5", "test/ce",
            "test/perplexity", "test/top1", "test/top5", "perf/updates_per_second",
            "perf/updates", "perf/train_seconds", "train/final_ce", "reproduce/failures",
            "reproduce/top1_agreement", "baseline/test_ce", "baseline/test_perplexity"
            } == set(metrics)
    for key, value in metrics.items():
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, key)] == [
            (0, pytest.approx(value))], key

    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "valid", "test"}
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert artifacts >= {"model.bin", "vocab.txt", "recipe.json", "history.json",
                         "ce_curves.png", "embeddings.png", "reproduction.md",
                         "reproduction.json"}
    local = Path(client.download_artifacts(run_id, "model.bin", str(tmp_path)))
    report = json.loads((out / "reproduction.json").read_text())   # quick: parity not enforced
    assert report["passed"] and {c["result"] for c in report["checks"]} == {
        "pass", "not enforced (the quick recipe reports it)",
        "not enforced (overridden: early_stop=1500)",
        "not enforced (overridden: early_stop=1500, validation_period=500)"}
    assert run.data.metrics["reproduce/failures"] == 0           # no byte check: not the C recipe
    assert "reproduce/identical" not in run.data.metrics
    assert local.read_bytes() == (out / "model.bin").read_bytes()

    # the logged model: named as its run, its final figures and datasets linked to it,
    # registered once its stages finished, with the reproduce stage's verdict
    [logged] = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert logged.name == "stop=1500-every=500-quick-exact" and logged.source_run_id == run_id
    linked = {m.key: m for m in logged.metrics}
    assert linked["test/ce"].value == pytest.approx(metrics["test/ce"])
    assert linked["test/ce"].dataset_name == "test" and linked["valid/top1"].dataset_name == "valid"
    assert logged.tags["wordnet.reproduce"] == "passed"
    [version] = client.search_model_versions("name = 'wordnet'")
    assert version.run_id == run_id and version.tags["wordnet.reproduce"] == "passed"
    assert version.description.startswith("stop=1500 every=500 · quick · exact: the quick "
                                          "recipe with early_stop=1500, validation_period=500")
    assert f"valid/final_ce {metrics['valid/final_ce']:.6g}" in version.description
    assert "not every check enforced" in version.description    # quick: parity is not
    assert client.get_registered_model("wordnet").aliases == {"best": version.version}
    mlflow.set_tracking_uri(mlflow_server)
    try:
        model = mlflow.pyfunc.load_model("models:/wordnet/latest")
        [answer] = model.predict(["have a good"], params={"top_k": 3})
        assert answer.context == ["have", "a", "good"] and len(answer.predictions) == 3
        assert mlflow.pyfunc.load_model(f"runs:/{run_id}/{logged.name}")
    finally:
        mlflow.set_tracking_uri(None)


def test_two_pipelines_at_once_on_one_new_sqlite_store(data_dir, tmp_path):
    """Both finish, and both runs are whole: in the experiment asked for, every parameter,
    the full train_ce history, the metrics.  The store is new, so both also race to
    create MLflow's tables; that leaves no stray table behind."""
    import sqlite3

    from mlflow import MlflowClient
    store = tmp_path / "shared.db"
    uri = f"sqlite:///{store}"
    command = [str(BIN / "wordnet-pipeline"), "run", "--pipeline", "quick", "--stage", "train",
               "--stage", "test", "--set", "early_stop=100", "--set", "backend=fast",
               "--set", "dtype=float32", "--data-dir", str(data_dir), "--tracking-uri", uri, "--experiment", "together"]
    processes = {name: subprocess.Popen([*command, "--out", str(tmp_path / name),
                                         "--run-name", name],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, cwd=tmp_path)
                 for name in ("a", "b")}
    try:
        outputs = {name: p.communicate(timeout=300)[0] for name, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    for name, p in processes.items():
        assert p.returncode == 0, outputs[name]

    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "together"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["a", "b"]
    for name, run in runs.items():
        out = tmp_path / name
        assert json.loads((out / "run.json").read_text())["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert {"batch_size", "embedding_size", "hidden_size", "epochs", "early_stop",
                "learning_rate", "momentum", "validation_period", "backend", "dtype", "init",
                "seed", "recipe", "wordnet_version"} <= set(params)
        assert (params["early_stop"], params["backend"], params["dtype"]) == ("100", "fast",
                                                                              "float32")
        history = json.loads((out / "history.json").read_text())["train_ce"]
        logged = client.get_metric_history(run.info.run_id, "train/ce_running_mean")
        assert sorted((m.step, m.value) for m in logged) == list(enumerate(history, 1))
        assert len(history) == 101
        metrics = json.loads((out / "metrics.json").read_text())
        assert set(metrics) <= set(run.data.metrics)
        for key in ("test/ce", "test/top1", "test/top5", "perf/updates_per_second"):
            assert run.data.metrics[key] == pytest.approx(metrics[key])
        assert "model.bin" in {a.path for a in client.list_artifacts(run.info.run_id)}
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%alembic_tmp%'"
                          ).fetchall() == []



def test_a_stage_alone_takes_the_model_of_an_mlflow_run(tracking_uri, data_dir, tmp_path):
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    runner = CliRunner()
    result = runner.invoke(cli, [
        "run", "--stage", "train", "--pipeline", "quick", "--set", "backend=exact",
        "--set", "early_stop=5", "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    trained = json.loads((tmp_path / "a" / "run.json").read_text())["mlflow_run_id"]
    result = runner.invoke(cli, [
        "run", "--stage", "test", "--from-run", trained, "--data-dir", str(data_dir),
        "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "model.bin").read_bytes() == (tmp_path / "a" / "model.bin").read_bytes()
    tested = json.loads((tmp_path / "b" / "run.json").read_text())["mlflow_run_id"]
    run = MlflowClient().get_run(tested)
    assert run.data.params["recipe"] == "quick" and run.data.params["early_stop"] == "5"
    assert "test/ce" in run.data.metrics
    assert tested == trained                           # one run per model: the model's
    assert run.info.run_name == "stop=5 · quick · exact"
    assert run.data.tags["wordnet.stages"] == "train,test"


def test_a_tracking_server_lost_mid_run_costs_seconds_and_the_run_finishes(
        empty_store, data_dir, tmp_path, servers):
    """A server killed mid-run used to mean 4-8 minutes of silent retries, then a
    traceback-like line and run.json saying FAILED though model.bin was good.  Now the
    first failed request (its retries bounded: here 2 tries of 2 s) loses the
    tracking, the run says so and goes on, and ends with exit status 1 and run.json
    saying what was not logged."""
    import signal
    shutil.copy(empty_store, tmp_path / "server.db")
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    with servers.start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                        "--artifacts-destination", str(tmp_path / "server-artifacts")],
                       f"{url}/health", tmp_path / "server.log", timeout=120,
                       env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=tmp_path) as server:
        run = subprocess.Popen(
            [str(BIN / "wordnet-pipeline"), "run", "--stage", "train", "--stage", "validate",
             "--pipeline", "quick", "--set", "backend=exact", "--set", "early_stop=1500",
             "--data-dir", str(data_dir), "--out", str(out), "--tracking-uri", url,
             "--no-register"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
        seen = []
        for line in run.stdout:                       # the MLflow run exists: kill the server
            seen.append(line)
            if line.startswith("MLflow run "):
                break
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        killed = time.monotonic()
        rest, _ = run.communicate(timeout=600)
        seconds = time.monotonic() - killed
    output = "".join(seen) + rest
    assert run.returncode == 1, output
    assert seconds < 60, output                       # training and validation take ~10 s
    assert "the run goes on without tracking" in output
    assert output.count("MLflow: ") == 1              # said once, not per call
    last = output.strip().splitlines()[-1]
    assert last.startswith("Error: the run finished in") and "MLflow did not take" in last
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "FINISHED" and manifest["mlflow_not_logged"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["perf/updates"] == 1500 and "valid/final_ce" in metrics
    assert (out / "model.bin").stat().st_size > 0

    # the server back: `log` ends the run the lost store left RUNNING, and completes it
    from mlflow import MlflowClient
    assert (out / ".mlflow_run").is_file()            # its end was lost with the store
    with servers.start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                        "--artifacts-destination", str(tmp_path / "server-artifacts")],
                       f"{url}/health", tmp_path / "server2.log", timeout=120,
                       env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=tmp_path):
        client = MlflowClient(url)
        assert client.get_run(manifest["mlflow_run_id"]).info.status == "RUNNING"
        logged = subprocess.run(
            [str(BIN / "wordnet-pipeline"), "log", "--out", str(out), "--data-dir", str(data_dir),
             "--tracking-uri", url, "--no-register"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert logged.returncode == 0, logged.stdout + logged.stderr
        assert "was left RUNNING" in logged.stdout
        run = client.get_run(manifest["mlflow_run_id"])
        [only] = client.search_runs([run.info.experiment_id])
        assert only.info.run_id == run.info.run_id and run.info.status == "FINISHED"
        assert run.data.metrics["valid/final_ce"] == metrics["valid/final_ce"]
    assert not (out / ".mlflow_run").exists()
    assert "mlflow_not_logged" not in json.loads((out / "run.json").read_text())


def test_log_puts_a_finished_folder_into_mlflow_as_the_run_would_have(tracking_uri, data_dir,
                                                                     tmp_path):
    """`wordnet-pipeline log --out DIR`: what a run that lost its tracking logs later."""
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    out = tmp_path / "out"
    ran = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "backend=exact", "--set", "early_stop=30",
        "--set", "validation_period=10", "--stage", "train", "--stage", "validate",
        "--stage", "test", "--data-dir", str(data_dir), "--out", str(out), "--no-tracking"])
    assert ran.exit_code == 0, ran.output
    logged = CliRunner().invoke(cli, ["log", "--out", str(out), "--data-dir", str(data_dir),
                                      "--experiment", "later"])
    assert logged.exit_code == 0, logged.output
    manifest = json.loads((out / "run.json").read_text())
    client = MlflowClient()
    run = client.get_run(manifest["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == manifest["mlflow_run_name"]
    assert run.info.run_name.startswith("stop=30 every=10 · quick · exact")
    assert run.data.params["early_stop"] == "30" and run.data.tags["wordnet.logged_later"]
    history = json.loads((out / "history.json").read_text())
    curve = client.get_metric_history(run.info.run_id, "train/ce_running_mean")
    assert [(m.step, m.value) for m in curve] == list(enumerate(history["train_ce"], 1))
    valid = sorted((m.step, m.value) for m in
                   client.get_metric_history(run.info.run_id, "valid/ce"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert valid[-1] == (len(history["train_ce"]), metrics["valid/final_ce"])
    for key, value in metrics.items():                 # the finals, as bars (step 0)
        [point] = client.get_metric_history(run.info.run_id, key)
        assert (point.step, point.value) == (0, value)
    [model] = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    assert {m.key for m in model.metrics} >= {"test/ce", "valid/final_ce"}
    assert client.get_registered_model("wordnet").latest_versions
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.bin", "history.json", "ce_curves.png", "embeddings.png"} <= names


def test_log_refuses_a_folder_without_a_run(tracking_uri, tmp_path):
    from click.testing import CliRunner

    from wordnet.cli import cli
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["log", "--out", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {tmp_path / 'empty'}/ holds no trained model with its run.json and "
        "recipe.json: nothing to log")


def test_a_server_that_answers_the_probe_then_stalls_is_an_error_within_the_bound(
        data_dir, tmp_path):
    """It used to sit at "connecting to MLflow..." for over 400 s (MLflow's 120 s
    timeout, 7 retries); each request now has a bounded number of bounded tries
    (here 2 of 2 s, as the MLFLOW_HTTP_REQUEST_* variables set them)."""
    import http.server
    answered, release = [], threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if not answered:                             # the probe: any answer will do
                answered.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")
                return
            release.wait(120)                            # then nothing, until the test ends

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_TIMEOUT": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    try:
        start = time.monotonic()
        done = subprocess.run(
            [str(BIN / "wordnet-pipeline"), "run", "--pipeline", "quick", "--data-dir",
             str(data_dir), "--out", str(tmp_path / "out"), "--tracking-uri", url],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        seconds = time.monotonic() - start
    finally:
        release.set()
        server.shutdown()
    assert answered                                      # the probe passed
    assert done.returncode == 1, done.stdout + done.stderr
    assert seconds < 60, seconds
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: cannot use the tracking store {url}"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "model.bin").exists()    # nothing trained for nothing


def test_a_store_error_is_not_also_logged_with_its_traceback(tracking_uri, capfd):
    """A read-only database (checked by hand on a read-only bind mount: a one-line error
    in 4.9 s) made MLflow log a 60-line traceback before the run's own one line."""
    import logging
    tracking.connect(None, "quiet")
    logging.getLogger(store.QUIETED_LOGGER).error("SQLAlchemy database error", exc_info=True)
    assert "SQLAlchemy database error" not in capfd.readouterr().err


def test_a_run_bounds_mlflows_requests_unless_told_otherwise(tracking_uri, monkeypatch):
    """MLflow's defaults (7 retries with backoff up to 120 s, 120 s a request) made a
    lost server 4-8 minutes of silence; a run sets its own, the user's settings win."""
    for name in store.WRITING_HTTP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    tracking.connect(None, "bounded")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"


def test_a_read_only_store_names_the_real_cause_not_sqlalchemys_autoflush(tmp_path):
    """Issue 21 item 7: a read-only or full SQLite store said "(raised as a result of
    Query-invoked autoflush; ...)" and dropped "attempt to write a readonly database"."""
    import sqlalchemy as sa
    from mlflow.exceptions import MlflowException
    from sqlalchemy.orm import Session, declarative_base

    from wordnet.tracking import first_line
    Base = declarative_base()

    class Row(Base):
        __tablename__ = "t"
        id = sa.Column(sa.Integer, primary_key=True)

    path = tmp_path / "store.db"
    Base.metadata.create_all(sa.create_engine(f"sqlite:///{path}"))
    read_only = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with Session(read_only) as session:
        session.add(Row())
        with pytest.raises(sa.exc.OperationalError) as e:
            session.query(Row).all()               # autoflush: the INSERT fails
    assert str(e.value).startswith("(raised as a result of Query-invoked autoflush")
    assert first_line(e.value) == "attempt to write a readonly database"
    try:                                            # as MLflow passes it on
        raise MlflowException(str(e.value)) from e.value
    except MlflowException as wrapped:
        assert first_line(wrapped) == "attempt to write a readonly database"
    # its text alone, the cause lost: the database's line, not the wrapper's
    assert first_line(MlflowException(str(e.value))) == (
        "(sqlite3.OperationalError) attempt to write a readonly database")
