"""wordnet.sweeps: trials here, in processes and on Ray, searched, pruned, stopped and
resumed, nested in MLflow."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet.cli import cli

BIN = Path(sys.executable).parent
# a quick trial: seconds, three validation points
SMALL = ["--pipeline", "quick", "--set", "early_stop=900", "--set", "validation_period=300"]


def children_of(client, experiment_name):
    [experiment] = client.search_experiments(filter_string=f"name = '{experiment_name}'")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_a_sweep_with_jobs_gives_the_same_runs_bit_for_bit(tracking_uri, data_dir, tmp_path):
    """--jobs 2: four quick trials two at a time, each a process of its own, give the
    children --jobs 1 gives (exact backend: the same figures to the last bit), nested
    under their parent in MLflow, each trial's output in its folder's trial.log."""
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    command = ["sweep", "--pipeline", "quick", "--set", "learning_rate=0.1,0.3",
               "--set", "hidden_size=50,100", "--set", "backend=exact", "--set", "early_stop=60",
               "--set", "validation_period=30", "--stage", "train", "--stage", "validate",
               "--stage", "test", "--data-dir", str(data_dir)]
    figures = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        result = CliRunner().invoke(cli, command + ["--jobs", str(jobs), "--out", str(out),
                                                    "--experiment", f"jobs{jobs}"])
        assert result.exit_code == 0, result.output
        rows = json.loads((out / "sweep.json").read_text())
        figures[jobs] = {row["folder"]: {k: v for k, v in row.items()
                                         if "/" in k and not k.startswith("perf/")}
                         for row in rows}
        client = MlflowClient()
        [experiment] = client.search_experiments(filter_string=f"name = 'jobs{jobs}'")
        runs = client.search_runs([experiment.experiment_id])
        [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
        assert {r["run_id"] for r in rows} == {c.info.run_id for c in children}
        assert parent.data.tags["wordnet.sweep.jobs"] == str(jobs)
    assert len(figures[1]) == 4 and figures[2] == figures[1]          # bit for bit
    assert all("test/ce" in row and "valid/final_ce" in row for row in figures[2].values())
    assert all((tmp_path / "jobs2" / folder / "trial.log").read_text().strip().endswith(
        f"done: {tmp_path / 'jobs2' / folder}/") for folder in figures[2])


def test_a_sweep_with_jobs_goes_on_past_a_failed_trial(data_dir, tmp_path):
    from click.testing import CliRunner

    from wordnet.cli import cli
    result = CliRunner().invoke(cli, [
        "sweep", "--pipeline", "quick", "--set", "learning_rate=0.1,1e305",
        "--set", "backend=exact", "--set", "early_stop=20", "--stage", "train",
        "--data-dir", str(data_dir), "--out", str(tmp_path / "out"), "--jobs", "2",
        "--no-tracking"])
    assert result.exit_code == 1 and "1 of 2 trials failed" in result.output
    rows = {row["learning_rate"]: row for row in
            json.loads((tmp_path / "out" / "sweep.json").read_text())}
    assert rows["0.1"]["status"] == "FINISHED" and rows["1e305"]["status"] == "FAILED"
    assert "diverged" in rows["1e305"]["error"].lower() or "finite" in rows["1e305"]["error"]
    summary = (tmp_path / "out" / "sweep.md").read_text()
    assert f"FAILED: {rows['1e305']['error']}" in summary and "| FINISHED |" in summary


def test_a_sweep_nests_one_run_per_combination(tracking_uri, data_dir, tmp_path):
    """Children named by their own values, nested under a parent that names the best
    child by validation CE and carries the summary, with every child's run ID."""
    import csv

    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    command = ["sweep", "--set", "learning_rate=0.05,0.2", "--set", "backend=exact",
               "--set", "epochs=1", "--set", "early_stop=5", "--stage", "train",
               "--stage", "validate", "--data-dir", str(data_dir), "--experiment", "sweeps",
               "--jobs", "1"]                              # here: processes are tested above
    for n in (1, 2):                                     # twice: the names stay unique
        result = CliRunner().invoke(cli, command + ["--out", str(tmp_path / f"sweep{n}")])
        assert result.exit_code == 0, result.output
    client = MlflowClient()
    [experiment] = [e for e in client.search_experiments() if e.name == "sweeps"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 6                                # 2 parents, 4 children, all named apart
    parent = runs.pop("sweep learning_rate × backend × epochs × early_stop · reference #2")
    first = runs.pop("sweep learning_rate × backend × epochs × early_stop · reference")
    assert parent.data.params["sweep.learning_rate"] == "0.05,0.2"
    # the parent's page, said when it starts, in the UI's training view
    assert (f"MLflow run '{parent.info.run_name}': " in result.output
            and f"/runs/{parent.info.run_id}?workflowType=machine_learning\n" in result.output)
    assert sorted(runs) == ["lr=0.05 epochs=1 stop=5 · reference · exact",
                            "lr=0.05 epochs=1 stop=5 · reference · exact #2",
                            "lr=0.2 epochs=1 stop=5 · reference · exact",
                            "lr=0.2 epochs=1 stop=5 · reference · exact #2"]
    children = {r.info.run_id: r for r in runs.values()
                if r.data.tags["mlflow.parentRunId"] == parent.info.run_id}
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children.values())
    best = min(children.values(), key=lambda c: c.data.metrics["valid/final_ce"])
    assert parent.data.tags["wordnet.best_run_id"] == best.info.run_id
    assert parent.data.tags["wordnet.best_run_name"] == best.info.run_name
    assert parent.data.metrics["valid/final_ce"] == best.data.metrics["valid/final_ce"]
    assert parent.data.metrics["sweep/runs"] == 2 and parent.data.metrics["sweep/failed"] == 0
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("A sweep of the reference recipe over learning_rate ∈ {0.05, 0.2} × ")
    assert f"Best by validation CE: {parent.data.tags['wordnet.best_run_name']} " in note
    assert {"sweep.md", "sweep.csv", "sweep.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    local = client.download_artifacts(parent.info.run_id, "sweep.csv", str(tmp_path))
    with open(local) as f:
        table = list(csv.DictReader(f))
    assert [row["run_id"] for row in table][0] == best.info.run_id
    assert {row["run_id"] for row in table} == set(children)
    assert [float(row["valid/final_ce"]) for row in table] == sorted(
        c.data.metrics["valid/final_ce"] for c in children.values())
    for child in children.values():
        assert len(client.get_metric_history(child.info.run_id, "train/ce_running_mean")) == 6
    assert first.info.run_id != parent.info.run_id


def test_asha_prunes_an_absurd_learning_rate_before_its_last_validation(tracking_uri,
                                                                        tmp_path):
    """Two trials at once (processes, the pruner reached through pipes): the third,
    lr=50, starts when one of the others has finished, and is stopped at its first
    validation point, KILLED in MLflow with the tag that says why, its curve kept.
    (With three trials ASHA lets only the best at a point go on: of lr=0.1 and 0.2,
    which run together, the worse is pruned too when it reports second.)"""
    from mlflow import MlflowClient
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["sweep", *SMALL, "--set", "learning_rate=0.1,0.2,50",
                                      "--prune", "asha", "--jobs", "2", "--out", str(out),
                                      "--experiment", "asha"])
    assert result.exit_code == 0, result.output
    rows = {row["learning_rate"]: row for row in json.loads((out / "sweep.json").read_text())}
    assert rows["50"]["status"] == "PRUNED" and "validation point 1" in rows["50"]["error"]
    # what ASHA decided, with the figure it compared with: fewer than 4 trials at the rung
    assert re.search(r"validation CE \d+\.\d{4}, not the best of the [23] trials at rung 0 "
                     r"\(the best: \d\.\d{4}\)$", rows["50"]["error"]), rows["50"]["error"]
    good = [rows[lr] for lr in ("0.1", "0.2")]
    assert "FINISHED" in {r["status"] for r in good} <= {"FINISHED", "PRUNED"}
    assert "| PRUNED: pruned at validation point 1" in (out / "sweep.md").read_text()
    client = MlflowClient()
    parent, children = children_of(client, "asha")
    by_id = {c.info.run_id: c for c in children}
    for lr, row in rows.items():
        run = by_id[row["run_id"]]
        points = client.get_metric_history(run.info.run_id, "valid/ce")
        if row["status"] == "PRUNED":
            assert run.info.status == "KILLED" and "validation point" in run.data.tags["wordnet.pruned"]
            assert len(points) < 3 and "valid/final_ce" not in run.data.metrics
            assert len(client.get_metric_history(run.info.run_id, "train/ce_running_mean")) >= 300
        else:
            assert run.info.status == "FINISHED" and len(points) == 3
    assert len(client.get_metric_history(by_id[rows["50"]["run_id"]].info.run_id, "valid/ce")) == 1
    pruned = sum(r["status"] == "PRUNED" for r in rows.values())
    assert parent.data.metrics["sweep/pruned"] == pruned and parent.data.metrics["sweep/failed"] == 0
    assert f"{pruned} pruned (asha)" in parent.data.tags["mlflow.note.content"]


def test_a_seeded_random_search_runs_the_same_trials_twice(data_dir, tmp_path):
    command = ["sweep", "--pipeline", "quick", "--set", "learning_rate=loguniform:0.01:1",
               "--set", "hidden_size=int:20:200", "--set", "backend=exact",
               "--set", "early_stop=5", "--samples", "2", "--sampler", "random", "--seed", "4",
               "--stage", "train", "--jobs", "1", "--data-dir", str(data_dir), "--no-tracking"]
    runs = []
    for n in (1, 2):
        result = CliRunner().invoke(cli, command + ["--out", str(tmp_path / f"s{n}")])
        assert result.exit_code == 0, result.output
        rows = json.loads((tmp_path / f"s{n}" / "sweep.json").read_text())
        runs.append(sorted((r["folder"], r["train/final_ce"]) for r in rows))
    assert runs[0] == runs[1] and len(runs[0]) == 2
    assert len({folder for folder, _ in runs[0]}) == 2


def wait_for(what: str, condition, seconds: float):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def test_ctrl_c_kills_every_trial_and_resume_runs_only_what_is_left(tracking_uri, tmp_path):
    """Ctrl-C (SIGINT to the sweep) while two trials run after a first has finished:
    both end KILLED, the parent too, with the summary of what ran; --resume with the
    parent's ID runs the other two and nothing else."""
    from mlflow import MlflowClient
    out = tmp_path / "out"
    command = [str(BIN / "wordnet-pipeline"), "sweep", "--pipeline", "quick",
               "--set", "learning_rate=0.1,0.2,0.3", "--set", "early_stop=1200",
               "--set", "validation_period=400", "--jobs", "2", "--threads", "1",
               "--experiment", "stopped", "--out", str(out)]
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env, text=True)
    try:
        def manifests():
            return [json.loads(p.read_text()) for p in out.glob("*/run.json")]
        wait_for("a first trial to finish",
                 lambda: any(m["status"] == "FINISHED" for m in manifests()), 300)
        client = MlflowClient()
        wait_for("the third trial's MLflow run",
                 lambda: len(children_of(client, "stopped")[1]) == 3, 120)
        sweep.send_signal(signal.SIGINT)
        output, _ = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, output
    parent, children = children_of(client, "stopped")
    assert parent.info.status == "KILLED"
    statuses = sorted(c.info.status for c in children)
    assert statuses in (["FINISHED", "KILLED", "KILLED"], ["FINISHED", "FINISHED", "KILLED"])
    rows = json.loads((out / "sweep.json").read_text())
    assert sorted(r["status"] for r in rows) == [s for s in statuses]
    finished = {c.data.params["learning_rate"] for c in children if c.info.status == "FINISHED"}

    result = CliRunner().invoke(cli, ["sweep", "--pipeline", "quick",
                                      "--set", "learning_rate=0.1,0.2,0.3",
                                      "--set", "early_stop=1200", "--set", "validation_period=400",
                                      "--jobs", "2", "--experiment", "stopped",
                                      "--resume", parent.info.run_id, "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    assert f"{len(finished)} trial(s) done, {3 - len(finished)} to run" in result.output
    parent, children = children_of(client, "stopped")
    assert parent.info.status == "FINISHED"
    rows = json.loads((tmp_path / "again" / "sweep.json").read_text())
    assert sorted(r["learning_rate"] for r in rows) == ["0.1", "0.2", "0.3"]
    assert all(r["status"] == "FINISHED" for r in rows)
    ran_again = [r for r in rows if r["folder"] != "-"]
    assert {r["learning_rate"] for r in ran_again} == {"0.1", "0.2", "0.3"} - finished
    assert sum(c.info.status == "FINISHED" for c in children) == 3
    assert parent.data.tags["wordnet.best_run_id"] == rows[0]["run_id"]


def test_a_sweep_resumes_only_a_sweep_of_the_same_values(tracking_uri, tmp_path):
    result = CliRunner().invoke(cli, ["sweep", "--pipeline", "quick", "--set", "early_stop=5",
                                      "--set", "learning_rate=0.1", "--stage", "train",
                                      "--jobs", "1", "--experiment", "r", "--out",
                                      str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    from mlflow import MlflowClient
    parent, _ = children_of(MlflowClient(), "r")
    result = CliRunner().invoke(cli, ["sweep", "--pipeline", "quick", "--set", "early_stop=5",
                                      "--set", "learning_rate=0.2", "--stage", "train",
                                      "--experiment", "r", "--resume", parent.info.run_id,
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "not a sweep of these --set values" in result.output
    assert "learning_rate" in result.output and "Traceback" not in result.output


# -- on Ray ------------------------------------------------------------------------------

def test_a_sweep_on_a_ray_cluster_logs_everything_to_the_tracking_server(
        ray_cluster, mlflow_server, tmp_path):
    """Four trials as Ray tasks on a local cluster (two CPUs: two at once), tracked to a
    real `mlflow server`: all FINISHED, their models downloadable through the server,
    nothing of theirs left on a worker's disk."""
    from mlflow import MlflowClient
    before = set(Path(tempfile.gettempdir()).glob("wordnet-trial-*"))
    out = tmp_path / "out"
    result = subprocess.run(
        [str(BIN / "wordnet-pipeline"), "sweep", *SMALL, "--set", "learning_rate=0.1,0.2",
         "--set", "hidden_size=50,100", "--executor", "ray", "--ray-address", ray_cluster,
         "--threads", "1", "--tracking-uri", mlflow_server, "--experiment", "ray",
         "--out", str(out)], capture_output=True, text=True, timeout=900,
        env=os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 at a time, 1 thread(s) each" in result.stdout
    client = MlflowClient(tracking_uri=mlflow_server)        # not the global URI: it stays
    parent, children = children_of(client, "ray")
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    rows = json.loads((out / "sweep.json").read_text())
    assert {r["run_id"] for r in rows} == {c.info.run_id for c in children}
    assert parent.data.tags["wordnet.best_run_id"] == rows[0]["run_id"]
    for child in children:
        assert child.info.artifact_uri.startswith("mlflow-artifacts:")      # the server's store
        local = client.download_artifacts(child.info.run_id, "model.bin", str(tmp_path / child.info.run_id))
        assert Path(local).stat().st_size > 100_000
        assert {"ce_curves.png", "embeddings.png"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    # here: each trial's manifest, figures and output, no model; on the workers: nothing
    assert {p.name for p in out.glob("*/*")} == {"run.json", "metrics.json", "trial.log"}
    assert set(Path(tempfile.gettempdir()).glob("wordnet-trial-*")) == before


def test_ray_with_a_cluster_refuses_a_tracking_store_on_this_machine(tmp_path):
    pytest.importorskip("ray")
    result = CliRunner().invoke(cli, ["sweep", *SMALL, "--set", "learning_rate=0.1,0.2",
                                      "--executor", "ray", "--ray-address", "10.0.0.1:6379",
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "cannot write to the tracking store sqlite:///" in result.output
    assert "mlflow server" in result.output and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize("args, message", [
    (["--executor", "ray", "--jobs", "2"], "--jobs is for --executor local"),
    (["--ray-address", "10.0.0.1:6379"], "--ray-address needs --executor ray"),
    (["--set", "hidden_size=loguniform:10:100"], "needs --samples N"),
    (["--resume", "0123", "--no-tracking"], "--resume finds the sweep in MLflow"),
    (["--seed", "1"], "--seed is the sampler's: it needs --samples N"),
])
def test_sweep_options_that_do_not_go_together_are_refused(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["sweep", *SMALL, "--set", "learning_rate=0.1,0.2", *args,
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_jobs_1_runs_the_trials_here_with_the_threads_given(tracking_uri, data_dir,
                                                           tmp_path, monkeypatch):
    """--jobs 1 --threads 1: the trial's model has one thread (its run's tag says so), and
    $WORDNET_THREADS is as it was before the sweep."""
    from mlflow import MlflowClient
    monkeypatch.setenv("WORDNET_THREADS", "2")           # restored after the test
    result = CliRunner().invoke(cli, ["sweep", "--pipeline", "quick", "--set", "early_stop=5",
                                      "--set", "learning_rate=0.1", "--stage", "train",
                                      "--jobs", "1", "--threads", "1", "--experiment", "t",
                                      "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "one after the other" in result.output
    assert os.environ["WORDNET_THREADS"] == "2"
    parent, [child] = children_of(MlflowClient(), "t")
    assert child.data.tags["wordnet.threads"] == "1"
    assert parent.data.tags["wordnet.threads"] == "1" and parent.data.tags["wordnet.sweep.jobs"] == "1"


# -- the executors' interface ------------------------------------------------------------

def test_executors_fill_in_jobs_and_threads_and_refuse_what_they_cannot_use(monkeypatch):
    from wordnet.errors import ConfigError
    from wordnet.sweeps.executor import Options, configure
    monkeypatch.setenv("WORDNET_THREADS", "4")           # the cores, as default_threads says
    assert configure(Options()) == Options(jobs=4, threads=1)
    assert configure(Options(jobs=2)) == Options(jobs=2, threads=2)
    assert configure(Options(threads=2)) == Options(jobs=2, threads=2)
    assert configure(configure(Options(jobs=3))) == configure(Options(jobs=3))     # once is all
    with pytest.raises(ConfigError, match="--ray-address needs --executor ray"):
        configure(Options(ray_address="10.0.0.1:6379"))
    with pytest.raises(ConfigError, match="not one of local, ray"):
        configure(Options(executor="slurm"))


class Serial:
    """An executor as a contributor would write one (here in a test module): each
    trial's row made up from its learning rate, no training."""

    slots, closed = 1, False

    @staticmethod
    def configure(options):
        return options

    def __init__(self, spec):
        self.spec = spec

    def describe(self) -> str:
        return "made up"

    def __call__(self, trial):
        from wordnet.sweeps.trials import trial_row
        ce = abs(float(trial.values["learning_rate"]) - 0.2)
        return trial_row(trial, self.spec.label(trial.values), "FINISHED",
                         {"train/final_ce": ce, "valid/final_ce": ce}, {})

    def stop(self):
        pass

    def close(self):
        Serial.closed = True


def test_an_executor_is_a_class_and_a_line_in_the_registry(dataset, tmp_path, monkeypatch):
    from wordnet.runs.recipes import load_recipe
    from wordnet.sweeps import executor
    from wordnet.sweeps.search import Search, parse_space
    from wordnet.sweeps.sweep import Sweep, sweep
    monkeypatch.setitem(executor.EXECUTORS, "serial", f"{__name__}:Serial")
    monkeypatch.setattr(Serial, "closed", False)
    said = []
    rows = sweep(Sweep(load_recipe("quick"), Search(parse_space(["learning_rate=0.1,0.25,1"])),
                       ("train", "validate"), tmp_path,
                       options=executor.Options("serial", tracked=False)),
                 echo=said.append, dataset=dataset)
    assert said[0] == f"sweep: 3 trials (quick recipe, made up) -> {tmp_path}/"
    assert [r["learning_rate"] for r in rows] == ["0.25", "0.1", "1"]       # best first
    assert Serial.closed and json.loads((tmp_path / "sweep.json").read_text()) == rows


# -- a trial's process -------------------------------------------------------------------

# A trial as run_process sees one: it reports a validation point when told to, waits for
# the answer, then trains (sleeps) until a signal ends it.
FAKE_TRIAL = r"""
import sys, time
report, answer = (int(fd) for fd in sys.argv[-1].split(","))
if sys.argv[1] == "report":
    with open(report, "w") as r, open(answer) as a:
        r.write("1 5.5\n"); r.flush(); a.readline()
        time.sleep(600)
time.sleep(600)
"""


@pytest.mark.parametrize("reports", ["report", "silent"])
def test_ctrl_c_in_a_trials_process_stops_its_child(reports, tmp_path):
    """Ctrl-C (as Ray's cancel is) while run_process waits, after a validation point or
    before any: KeyboardInterrupt, the child ended by SIGTERM (its run KILLED), not left
    running behind a TypeError or an UnboundLocalError."""
    import _thread
    import threading

    from wordnet.runs.rundir import RunDir
    from wordnet.sweeps.search import Trial
    from wordnet.sweeps.trials import STOPPED, finished_trial, run_process
    children, asked = [], []

    def judge(point, valid_ce):
        asked.append((point, valid_ce))
        return False

    ctrl_c = threading.Timer(1.5, _thread.interrupt_main)
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_process([sys.executable, "-c", FAKE_TRIAL, reports], tmp_path / "trial.log",
                        dict(os.environ), judge, children.append)
    finally:
        ctrl_c.cancel()
        for process in children:
            left = process.poll() is None
            process.kill()
            assert not left, "the trial's process was left running"
    [child] = children
    assert child.poll() in STOPPED
    assert asked == ([(1, 5.5)] if reports == "report" else [])
    row = finished_trial(Trial(0, {}, "t"), "t", child.returncode, RunDir(tmp_path), "",
                         echo=lambda line: None)
    assert row["status"] == "KILLED"


def test_a_trial_left_running_when_the_sweep_stops_is_ended_killed(tracking_uri):
    """A trial stopped by Ctrl-C as it started, or killed after STOP_SECONDS, cannot end
    its run: the sweep, which owns it, does; its finished siblings stay as they were."""
    from mlflow import MlflowClient

    from wordnet import tracking
    from wordnet.sweeps.sweep import _end_stopped_trials
    client = MlflowClient()
    tracking.connect(tracking_uri, "left")
    with tracking.start_run("sweep") as parent:
        experiment = client.get_run(parent.run_id).info.experiment_id
        done = client.create_run(experiment, tags={"mlflow.parentRunId": parent.run_id})
        client.set_terminated(done.info.run_id, "FINISHED")
        left = client.create_run(experiment, tags={"mlflow.parentRunId": parent.run_id})
        _end_stopped_trials(parent)
    assert client.get_run(left.info.run_id).info.status == "KILLED"
    assert client.get_run(done.info.run_id).info.status == "FINISHED"
