"""Sweeps: one run per combination of ``--set`` values, nested under a parent MLflow run
that says what was swept and which run was best.

The parent carries the grid (parameters ``sweep.KEY``), a description, the best
run's final figures (by validation CE, never test: choosing by test would make
its test CE optimistic) with its name and run ID as tags, and a summary table
sorted by validation CE, as ``sweep.md`` and ``sweep.csv`` with every run's ID.
"""
from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

from . import tracking
from .data import load_dataset
from .fileio import atomic_write
from .model import THREADS_ENV, default_threads
from .pipeline import PipelineError, run
from .plots.painter import PACKAGE_ROOT
from .recipes import Recipe, with_overrides
from .rundir import MANIFEST, METRICS, SWEEP, RunDir, check_writable
from .tracking import NoRun

SELECT_BY = "valid/final_ce"                  # lower is better
TRIAL_LOG = "trial.log"                       # a trial's output, when it runs in a process
# `wordnet-pipeline run` in a new Python, on this package (see plots.painter)
RUN_CLI = ("import sys; sys.path.insert(0, {root!r}); sys.argv[0] = 'wordnet-pipeline'; "
           "from wordnet.cli import main; main()")
SHOWN = ("valid/final_ce", "test/ce", "valid/top1", "train/final_ce", "perf/updates_per_second")


def sweep(recipe: Recipe, grid: list[dict[str, str]], stages, out: Path, data_dir: Path | None,
          track: bool = False, run_name: str | None = None, echo=print,
          progress=None, dataset=None, jobs: int = 1, source: str | None = None) -> list[dict]:
    """One run per combination of ``grid``, nested under one parent run.  A run that
    fails is reported and the sweep goes on.  Returns a row per run, best first.

    ``jobs`` > 1 runs that many at once, each a ``wordnet-pipeline run`` process of
    its own (:func:`_in_processes`) on its share of the cores; the recipe is then
    read again from ``source``, the name or file it came from."""
    dataset = dataset or load_dataset(data_dir)
    check_writable(out)
    axes = {key: list(dict.fromkeys(c[key] for c in grid)) for key in grid[0]}
    varying = [key for key, values in axes.items() if len(values) > 1]   # first in the names
    name = run_name or f"sweep {' × '.join(axes)} · {recipe.name}"
    trials = [("-".join(f"{k}={v}" for k, v in combination.items()), combination,
               with_overrides(recipe, combination).label(first=varying)) for combination in grid]
    with tracking.start_run(name) if track else nullcontext(NoRun()) as parent:
        parent.log_params({f"sweep.{key}": ",".join(values) for key, values in axes.items()})
        parent.set_tags({"wordnet.recipe": recipe.name, "wordnet.sweep.runs": str(len(grid)),
                         "wordnet.sweep.jobs": str(jobs),
                         **tracking.machine_tags(default_threads())})
        if jobs > 1:
            rows = _in_processes(trials, jobs, source or recipe.name, stages, out, data_dir,
                                 parent.run_id, echo)
        else:
            rows = [_in_this_process(trial, recipe, stages, out, data_dir, track, dataset,
                                     echo, progress) for trial in trials]
        rows.sort(key=_rank)
        best = rows[0] if SELECT_BY in rows[0] else None
        RunDir(out).write_json(SWEEP, rows)
        atomic_write(out / "sweep.md", summary_markdown(rows, list(axes)).encode())
        atomic_write(out / "sweep.csv", summary_csv(rows, list(axes)).encode())
        parent.set_tags({"mlflow.note.content": description(recipe, axes, rows, best)})
        if best:
            parent.set_tags({"wordnet.best_run_id": str(best["run_id"]),
                             "wordnet.best_run_name": best["run"]})
            parent.log_metrics({key: best[key] for key in best
                                if "/" in key and isinstance(best[key], (int, float))})
        parent.log_metrics({"sweep/runs": len(rows),
                            "sweep/failed": sum(r["status"] != "FINISHED" for r in rows)})
        parent.log_artifacts(out / SWEEP, out / "sweep.md", out / "sweep.csv")
    return rows


def _in_this_process(trial, recipe, stages, out, data_dir, track, dataset, echo, progress
                     ) -> dict:
    folder, combination, label = trial
    echo(f"== {folder}")
    row = {"run": label, **combination}
    try:
        metrics = run(recipe, combination, stages, out / folder, data_dir, track, label,
                      echo=echo, progress=progress, dataset=dataset, nested=True)
        row |= {"status": "FINISHED", **metrics}
    except PipelineError as e:
        echo(f"{folder}: {e}")
        row |= {"status": "FAILED", "error": str(e)}
    return _with_run(row, out, folder)


def _in_processes(trials, jobs, source, stages, out, data_dir, parent_run_id, echo
                  ) -> list[dict]:
    """The trials, ``jobs`` at a time, each a ``wordnet-pipeline run`` process with
    cores // jobs threads (its BLAS's too), its output in its folder's trial.log, its
    MLflow run nested under ``parent_run_id`` (None: untracked).  Ctrl-C or SIGTERM
    stops them all (their runs end KILLED), then the sweep."""
    threads = str(max(1, default_threads() // jobs))
    env = os.environ | {THREADS_ENV: threads, "OPENBLAS_NUM_THREADS": threads}
    where = tracking.current_store() if parent_run_id else None
    running, lock = set(), threading.Lock()

    def one(trial) -> dict:
        folder, combination, label = trial
        command = _run_command(source, combination, stages, out / folder, data_dir, label,
                               where, parent_run_id)
        (out / folder).mkdir(parents=True, exist_ok=True)
        with open(out / folder / TRIAL_LOG, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env)
            with lock:
                running.add(process)
            status = process.wait()
            with lock:
                running.discard(process)
        row = {"run": label, **combination}
        if status == 0:
            row |= {"status": "FINISHED", **(RunDir(out / folder).read_json(METRICS) or {})}
        else:
            lines = (out / folder / TRIAL_LOG).read_text(errors="replace").strip().splitlines()
            row |= {"status": "FAILED", "error": lines[-1] if lines else f"exit {status}"}
        echo(f"== {folder}: {row['status']}" + (f" ({row['error']})" if "error" in row else ""))
        return _with_run(row, out, folder)

    echo(f"{len(trials)} runs, {jobs} at a time, {threads} thread(s) each")
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="wordnet-trial")
    try:
        return list(pool.map(one, trials))
    except KeyboardInterrupt:
        with lock:
            for process in running:
                process.terminate()                  # SIGTERM: each ends its run KILLED
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_command(source, combination, stages, folder, data_dir, label, where, parent_run_id
                 ) -> list[str]:
    command = [sys.executable, "-P", "-c", RUN_CLI.format(root=str(PACKAGE_ROOT)), "run",
               "--pipeline", source, "--out", str(folder), "--run-name", label, "--no-register"]
    command += [arg for key, value in combination.items() for arg in ("--set", f"{key}={value}")]
    command += [arg for stage in stages for arg in ("--stage", stage)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if where is None:
        return command + ["--no-tracking"]
    uri, experiment = where
    return command + ["--tracking-uri", uri, "--experiment", experiment,
                      "--parent-run", parent_run_id]


def _with_run(row: dict, out: Path, folder: str) -> dict:
    """``row`` with its MLflow run's name and ID, as its folder's run.json says."""
    manifest = RunDir(out / folder).read_json(MANIFEST) or {}
    return row | {"run": manifest.get("mlflow_run_name") or row["run"],
                  "run_id": manifest.get("mlflow_run_id"), "folder": folder}


def _rank(row: dict):
    """Finished runs by validation CE, then those without one, then the failed."""
    value = row.get(SELECT_BY)
    return (row["status"] != "FINISHED", value is None or not math.isfinite(value),
            value if value is not None else 0.0)


def description(recipe: Recipe, axes: dict, rows: list[dict], best: dict | None) -> str:
    grid = " × ".join(f"{key} ∈ {{{', '.join(values)}}}" for key, values in axes.items())
    failed = sum(r["status"] != "FINISHED" for r in rows)
    text = (f"A sweep of the {recipe.name} recipe over {grid}: {len(rows)} runs, nested "
            f"below{f', {failed} failed' if failed else ''}.")
    if best:
        text += (f"\n\nBest by validation CE: {best['run']} (run {best['run_id']}), "
                 f"validation CE {best[SELECT_BY]:.6f}.")
    elif rows:
        text += "\n\nNo run has a validation CE (the validate stage did not run): no best run."
    return text + (f"\n\n{recipe.description}" if recipe.description else "")


def summary_markdown(rows: list[dict], keys: list[str]) -> str:
    header = ["rank", "run", *keys, *SHOWN, "status", "run ID"]
    lines = ["# Sweep summary", "", f"Sorted by {SELECT_BY} (lower is better).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n, r in enumerate(rows, 1):
        cells = [str(n), r["run"], *(r[k] for k in keys), *(_shown(r.get(k)) for k in SHOWN),
                 r["status"] + (f": {r['error']}" if "error" in r else ""), str(r["run_id"] or "-")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[dict], keys: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "run", *keys, *SHOWN, "status", "error", "run_id", "folder"])
    for n, r in enumerate(rows, 1):
        writer.writerow([n, r["run"], *(r[k] for k in keys), *(r.get(k, "") for k in SHOWN),
                         r["status"], r.get("error", ""), r["run_id"] or "", r["folder"]])
    return buffer.getvalue()


def _shown(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
