"""A sweep's trial as a process of its own: a ``wordnet-pipeline run`` whose
validation points the sweep judges (its pruner) through a pair of pipes, and its
row of the sweep's summary.

The trial writes ``POINT CE`` for each validation point on one pipe and waits for
``go``, or ``stop WHY`` (what the pruner decided), on the other; the sweep answers at
once, from its Optuna study.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess

from wordnet.models.base import THREADS_ENV
from wordnet.processes import python_command
from wordnet.runs.rundir import MANIFEST, METRICS, RunDir
from wordnet.sweeps.search import Trial

# Threads of a trial: two trials of one thread each make more trials per hour on two
# cores than one of two threads (benchmarks/bench_sweeps.py)
THREADS = 1
POLL_SECONDS = 0.5
STOP_SECONDS = 30               # SIGTERM to SIGKILL
ANSWER_SECONDS = 60             # a trial's bound on waiting for the sweep's answer
TRIAL_LOG = "trial.log"         # a trial's output
# a trial's exit status when a signal stopped it: SIGTERM or SIGINT, itself or its handler
STOPPED = (-signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that gives a trial ``threads`` threads: ours and its BLAS's."""
    return {THREADS_ENV: str(threads), "OPENBLAS_NUM_THREADS": str(threads)}


RUN_CLI = "sys.argv[0] = 'wordnet-pipeline'; from wordnet.cli import main; main()"


def run_command(source: str, values: dict, stages, folder, data_dir, label: str,
                where: tuple[str, str] | None, parent_run_id: str | None,
                installed: bool = False) -> list[str]:
    """The ``wordnet-pipeline run`` of one trial: the recipe ``source`` with ``values``,
    into ``folder``, tracked to ``where`` (URI, experiment) under ``parent_run_id``, or
    not at all (None).  ``installed``: the package a worker has installed, not this
    one's source (a Ray worker on another machine)."""
    command = python_command(RUN_CLI, installed) + [
        "run", "--pipeline", source, "--out", str(folder), "--run-name", label, "--no-register"]
    command += [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    command += [arg for stage in stages for arg in ("--stage", stage)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if where is None:
        return command + ["--no-tracking"]
    uri, experiment = where
    return command + ["--tracking-uri", uri, "--experiment", experiment,
                      "--parent-run", parent_run_id]


def run_process(command: list[str], log_path, env: dict, judge, started=None) -> int:
    """Run a trial's ``command``, its output into ``log_path``, answering its validation
    points with ``judge(point, valid_ce) -> why to stop, or None``; its exit status.  ``started(process)``
    is told the process (to stop it on Ctrl-C)."""
    report_r, report_w = os.pipe()
    answer_r, answer_w = os.pipe()
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command + ["--judge-fds", f"{report_w},{answer_r}"],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env,
                                       pass_fds=(report_w, answer_r))
    finally:
        os.close(report_w)
        os.close(answer_r)
    if started:
        started(process)
    try:
        with os.fdopen(report_r, "r") as reports, os.fdopen(answer_w, "w") as answers:
            while True:                              # until the trial exits
                # a short select, not a blocking read: Ray cancels a task by interrupting
                # its main thread, which a blocking read would not notice
                if not select.select([reports], [], [], POLL_SECONDS)[0]:
                    continue
                line = reports.readline()
                if not line:
                    break
                point, valid_ce = line.split()
                why = judge(int(point), float(valid_ce))        # None: it goes on
                try:
                    answers.write(f"stop {' '.join(why.split())}\n" if why else "go\n")
                    answers.flush()
                except BrokenPipeError:              # it ended meanwhile
                    break
        return process.wait()
    except BaseException:                            # Ctrl-C, a cancelled Ray task
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (the trial saves and ends its run KILLED), then SIGKILL after STOP_SECONDS."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class PipeJudge:
    """The trial's side: asks the sweep at each validation point whether to stop.
    Without an answer within ANSWER_SECONDS (the sweep is gone), it goes on."""

    def __init__(self, fds: str, echo=print):
        report, answer = (int(fd) for fd in fds.split(","))
        self.reports = os.fdopen(report, "w")
        self.answers = os.fdopen(answer, "r")
        self.echo = echo

    def __call__(self, point: int, valid_ce: float) -> str | None:
        try:
            self.reports.write(f"{point} {valid_ce!r}\n")
            self.reports.flush()
        except BrokenPipeError:
            return None
        ready, _, _ = select.select([self.answers], [], [], ANSWER_SECONDS)
        if not ready:
            self.echo(f"warning: no answer from the sweep in {ANSWER_SECONDS} s about "
                      f"validation point {point}; training goes on")
            return None
        verdict, _, why = self.answers.readline().strip().partition(" ")
        return (why or "the sweep's pruner stopped it") if verdict == "stop" else None


def trial_row(trial: Trial, label: str, status: str, metrics: dict, manifest: dict,
              error: str | None = None) -> dict:
    """A trial's line of the summary."""
    row = {"run": manifest.get("mlflow_run_name") or label, **trial.values, "status": status,
           **({"error": error} if error else {}), **metrics}
    return row | {"run_id": manifest.get("mlflow_run_id"), "folder": trial.folder}


def finished_trial(trial: Trial, label: str, exit_status: int, folder: RunDir,
                   output: str, echo=print) -> dict:
    """The row of a trial that ran as a process, from its folder and its output; its
    ending said in a line."""
    manifest = folder.read_json(MANIFEST) or {}
    lines = output.strip().splitlines()
    if exit_status == 0:
        row = trial_row(trial, label, "FINISHED", folder.read_json(METRICS) or {}, manifest)
    else:
        status = manifest.get("status") if manifest.get("status") in ("PRUNED", "KILLED") \
            else "KILLED" if exit_status in STOPPED else "FAILED"
        error = lines[-1].removeprefix("Error: ") if lines else f"exit status {exit_status}"
        row = trial_row(trial, label, status, {}, manifest, error)
    echo(f"== {trial.folder}: {row['status']}" + (f" ({row['error']})" if "error" in row else ""))
    return row
