"""wordnet.runs.ownership: one MLflow run per trained model, which later commands on its
folder continue, and no run left RUNNING after a command that did not end."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet.cli import cli

BIN = Path(sys.executable).parent
TINY = ["--pipeline", "quick", "--set", "backend=exact", "--set", "early_stop=30",
        "--set", "validation_period=10"]


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    return result


def runs_of(experiment: str):
    from mlflow import MlflowClient
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_a_stage_run_alone_continues_the_models_run(tracking_uri, data_dir, tmp_path):
    """`--stage train` then `--stage validate --stage test --out DIR`: one run, the
    model's, holding the training's curve and the later stages' figures."""
    out = tmp_path / "out"
    trained = invoke("run", *TINY, "--stage", "train", "--data-dir", str(data_dir),
                     "--out", str(out))
    assert trained.exit_code == 0, trained.output
    run_id = json.loads((out / "run.json").read_text())["mlflow_run_id"]
    later = invoke("run", "--stage", "validate", "--stage", "test", "--data-dir",
                   str(data_dir), "--out", str(out))
    assert later.exit_code == 0, later.output
    [run] = runs_of("wordnet-4gram")                      # the kind's experiment, by default
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags["wordnet.stages"] == "train,validate,test"
    assert {"train/final_ce", "valid/final_ce", "test/ce"} <= set(run.data.metrics)
    assert json.loads((out / "run.json").read_text())["mlflow_run_id"] == run_id
    assert not (out / ".mlflow_run").exists()
    # registered once, by the training; the later command described its version anew
    from mlflow import MlflowClient
    [version] = MlflowClient().search_model_versions("name = 'wordnet'")
    assert version.run_id == run_id and "test/ce" in version.description


def test_a_run_a_killed_command_left_running_is_ended_by_the_next_command(
        tracking_uri, data_dir, tmp_path):
    """What a SIGKILL leaves (the run RUNNING, .mlflow_run naming it): the next command
    on the folder ends it KILLED, saying why, and goes on."""
    from mlflow import MlflowClient
    out = tmp_path / "out"
    assert invoke("run", *TINY, "--stage", "train", "--data-dir", str(data_dir), "--out",
                  str(out)).exit_code == 0
    client = MlflowClient()
    model_run = json.loads((out / "run.json").read_text())["mlflow_run_id"]
    experiment = client.get_run(model_run).info.experiment_id
    left = client.create_run(experiment, run_name="killed").info.run_id    # RUNNING
    (out / ".mlflow_run").write_text(json.dumps({"run_id": left, "tracking_uri": tracking_uri}))
    result = invoke("run", "--stage", "test", "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"MLflow run {left} was left RUNNING" in result.output
    orphan = client.get_run(left)
    assert orphan.info.status == "KILLED"
    assert "stopped without ending it" in orphan.data.tags["wordnet.ended_because"]
    assert not [r for r in runs_of("wordnet-4gram") if r.info.status == "RUNNING"]
    assert not (out / ".mlflow_run").exists()


def test_a_run_interrupted_after_its_training_registers_nothing(tracking_uri, data_dir,
                                                                tmp_path, monkeypatch):
    """models:/wordnet/latest is always a finished run's model: a run stopped in
    validate has logged its model, but no version of it is registered."""
    from mlflow import MlflowClient

    from wordnet.runs.fourgram_stages import FourGramStages

    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(FourGramStages, "validate", interrupted)
    out = tmp_path / "out"
    result = invoke("run", *TINY, "--stage", "train", "--stage", "validate", "--data-dir",
                    str(data_dir), "--out", str(out))
    assert result.exit_code == 130, result.output
    [run] = runs_of("wordnet-4gram")
    assert run.info.status == "KILLED"
    assert MlflowClient().search_logged_models(experiment_ids=[run.info.experiment_id])
    assert MlflowClient().search_model_versions("name = 'wordnet'") == []


def test_log_twice_makes_one_run_and_one_version(tracking_uri, data_dir, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", *TINY, "--stage", "train", "--stage", "validate", "--data-dir",
                  str(data_dir), "--out", str(out), "--no-tracking").exit_code == 0
    first = invoke("log", "--out", str(out), "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    second = invoke("log", "--out", str(out), "--data-dir", str(data_dir))
    assert second.exit_code == 0, second.output
    assert "is logged already" in second.output
    from mlflow import MlflowClient
    [run] = runs_of("wordnet-4gram")
    assert run.info.status == "FINISHED"
    assert len(MlflowClient().search_model_versions("name = 'wordnet'")) == 1


def test_a_resumed_run_continues_its_killed_run_with_one_whole_curve(tracking_uri, data_dir,
                                                                      fresh_save, tmp_path):
    """SIGKILL mid-training (the run RUNNING, a periodic checkpoint saved), then
    --resume: the same MLflow run, ended FINISHED, its training curve whole."""
    from mlflow import MlflowClient
    out = tmp_path / "out"
    command = [str(BIN / "wordnet-pipeline"), "run", "--pipeline", "quick", "--stage",
               "train", "--set", "backend=exact", "--set", "early_stop=2000",
               "--set", "checkpoint_minutes=0.005", "--data-dir", str(data_dir),
               "--out", str(out)]
    log = open(tmp_path / "killed.log", "w")
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    state = out / "model.bin.state.npz"
    deadline = time.monotonic() + 120
    while not (state.exists() and (out / ".mlflow_run").exists()):
        assert child.poll() is None and time.monotonic() < deadline, (
            f"no checkpoint saved:\n{(tmp_path / 'killed.log').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)                                   # a few hundred iterations more
    fresh_save(child, state)                          # then the kill, just after a save
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    log.close()
    killed = json.loads((out / ".mlflow_run").read_text())["run_id"]
    client = MlflowClient()
    assert client.get_run(killed).info.status == "RUNNING"      # as SIGKILL leaves it

    resumed = subprocess.run(command[:2] + ["--resume", "--data-dir", str(data_dir),
                                            "--out", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "was left RUNNING" in resumed.stdout
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["mlflow_run_id"] == killed
    run = client.get_run(killed)
    assert run.info.status == "FINISHED"
    assert "wordnet.ended_because" not in run.data.tags       # it went on: not ended there
    steps = {m.step for m in client.get_metric_history(killed, "train/ce_running_mean")}
    history = json.loads((out / "history.json").read_text())
    assert steps == set(range(1, len(history["train_ce"]) + 1))  # nothing missing
    assert [r.info.run_id for r in runs_of("wordnet-4gram")] == [killed]


@pytest.mark.parametrize(("recipe", "experiment"), [
    ("quick", "wordnet-4gram"), ("window", "wordnet-window"),
    ("skipgram", "wordnet-skipgram"), ("skipgram-neg", "wordnet-skipgram-neg")])
def test_each_kind_of_model_has_its_experiment(recipe, experiment):
    """A metric's name means one quantity in an experiment: skip-gram's training loss
    with negative samples is not its full softmax's CE."""
    from wordnet.runs.recipes import load_recipe
    assert load_recipe(recipe).config.experiment == experiment


def test_a_later_failed_reproduction_is_written_on_the_runs_version(tracking_uri, data_dir,
                                                                    tmp_path):
    """A model registered by its training, then reproduced against another checkpoint
    (byte for byte: fails): its version says so, and gets no `reproduced` alias."""
    from mlflow import MlflowClient
    ours, other = tmp_path / "ours", tmp_path / "other"
    assert invoke("run", *TINY, "--stage", "train", "--stage", "validate", "--data-dir",
                  str(data_dir), "--out", str(ours)).exit_code == 0
    assert invoke("run", *TINY, "--set", "learning_rate=0.2", "--stage", "train",
                  "--data-dir", str(data_dir), "--out", str(other),
                  "--no-tracking").exit_code == 0
    failed = invoke("run", "--stage", "reproduce", "--set",
                    f"reference_checkpoint={other / 'model.bin'}", "--data-dir", str(data_dir),
                    "--out", str(ours))
    assert failed.exit_code == 1, failed.output
    client = MlflowClient()
    [version] = client.search_model_versions("name = 'wordnet'")
    assert version.tags["wordnet.reproduce"].startswith("failed: ")
    assert "reproduced" not in client.get_registered_model("wordnet").aliases
    [run] = runs_of("wordnet-4gram")
    assert run.info.status == "FAILED" and version.run_id == run.info.run_id


@pytest.mark.parametrize("marker", ["garbage{", '{"run_id": 5}', '{"run_id": "../x"}'])
def test_a_damaged_open_run_record_is_ignored_not_fatal(marker, tracking_uri, data_dir,
                                                        tmp_path):
    """A hand-edited .mlflow_run names no run to end: the command says so and goes on."""
    out = tmp_path / "out"
    assert invoke("run", *TINY, "--stage", "train", "--data-dir", str(data_dir), "--out",
                  str(out)).exit_code == 0
    (out / ".mlflow_run").write_text(marker)
    result = invoke("run", "--stage", "test", "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert not [r for r in runs_of("wordnet-4gram") if r.info.status == "RUNNING"]
    assert len(runs_of("wordnet-4gram")) == 1
