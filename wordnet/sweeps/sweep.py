"""Sweeps: the trials of a search (:mod:`wordnet.sweeps.search`), run here, in processes of
their own or on Ray, nested under a parent MLflow run that says what was swept and
which run was best.

The parent carries the search (parameters ``sweep.KEY``), a description, the best
run's final figures (by validation CE, never test: choosing by test would make
its test CE optimistic) with its name and run ID as tags, and a summary table
sorted by validation CE, as ``sweep.md``, ``sweep.csv`` and ``sweep.json`` with every
run's ID.  A trial that fails is FAILED with its error and the others go on; one the
pruner stops is KILLED with the tag ``wordnet.pruned``; Ctrl-C stops them all.
"""
from __future__ import annotations

import csv
import io
import math
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from wordnet import tracking
from wordnet.data.dataset import load_dataset
from wordnet.fileio import atomic_write
from wordnet.models import registry
from wordnet.models.base import default_threads
from wordnet.models.kind import Figures
from wordnet.runs.pipeline import PipelineError, Pruned, run
from wordnet.runs.recipes import Recipe, with_overrides
from wordnet.runs.rundir import MANIFEST, SWEEP, RunDir, check_writable
from wordnet.sweeps.search import Search, Trial
from wordnet.sweeps.trials import (
    TRIAL_LOG,
    finished_trial,
    run_command,
    run_process,
    thread_env,
    trial_row,
)
from wordnet.tracking import NoRun

CURVES = ("train/batch_ce_mean10", "train/epoch")   # besides each model's two (figures.py)
STOP_SECONDS = 60                             # Ctrl-C: the bound on the trials' ending


def sweep(recipe: Recipe, search: Search, stages, out: Path, data_dir: Path | None,
          track: bool = False, run_name: str | None = None, echo=print, progress=None,
          dataset=None, jobs: int = 1, threads: int | None = None, source: str | None = None,
          ray=None, resume: str | None = None) -> list[dict]:
    """The trials of ``search``, nested under one parent run; a row per trial, best first.

    ``jobs`` == 1 runs them here, one after the other; more, that many at once, each
    a ``wordnet-pipeline run`` process of its own with ``threads`` threads (the recipe
    read again from ``source``, the name or file it came from); ``ray`` (a
    :class:`wordnet.sweeps.ray_executor.RayTrials`) runs them as Ray tasks.  ``resume``, the
    parent run of an earlier sweep: its finished and pruned trials are not run again."""
    dataset = dataset or load_dataset(data_dir)
    check_writable(out)
    varying = [key for key, axis in search.space.items()
               if axis.kind != "grid" or len(axis.values) > 1]      # first in the names
    name = run_name or f"sweep {' × '.join(search.space)} · {recipe.name}"
    label = lambda values: with_overrides(recipe, values).label(first=varying)  # noqa: E731
    earlier = []
    if resume:
        earlier = _earlier_trials(resume, recipe, search)
        echo(f"resuming sweep run {resume}: {len(earlier)} trial(s) done, "
             f"{search.total - len(earlier)} to run")
    context = (tracking.start_run(name, run_id=resume) if track else nullcontext(NoRun()))
    with context as parent:
        parent.log_params(search.params())
        parent.set_tags({"wordnet.recipe": recipe.name, "wordnet.sweep.runs": str(search.total),
                         "wordnet.sweep.search": search.describe(),
                         "wordnet.sweep.prune": search.prune,
                         "wordnet.sweep.executor": "ray" if ray is not None else "local",
                         "wordnet.sweep.folder": str(Path(out).resolve()),
                         **tracking.machine_tags(default_threads())})
        where = tracking.current_store() if track else None
        if ray is not None:
            launch, slots = ray.launcher(source or recipe.name, stages, out, where,
                                         parent.run_id, search, label, echo), ray.slots
        elif jobs > 1:
            launch, slots = _Processes(source or recipe.name, stages, out, data_dir, where,
                                       parent.run_id, search, label, threads, echo), jobs
        else:
            launch, slots = _InThisProcess(recipe, stages, out, data_dir, track, dataset,
                                           search, label, echo, progress), 1
        parent.set_tags({"wordnet.sweep.jobs": str(slots)})   # trials at once
        rows = list(earlier)
        try:
            _drive(search, launch, slots, rows, registry.of(recipe.config).figures.select_by)
        finally:                                     # Ctrl-C too: the summary of what ran
            launch.close()
            _summarise(parent, recipe, search, rows, out)
    return rows


def _drive(search: Search, launch, slots: int, rows: list, select_by: str) -> None:
    """Hand out the search's trials to ``slots`` launchers at once until none is left;
    each trial's row into ``rows``, its ``select_by`` figure to the search.  Ctrl-C: no
    new trial, the running ones stopped."""
    def worker():
        while (trial := search.next()) is not None:
            row = launch(trial)
            search.finish(trial.number, row["status"], row.get(select_by))
            rows.append(row)

    if slots == 1:
        worker()                                     # in the main thread: signals reach it
        return
    pool = ThreadPoolExecutor(slots, thread_name_prefix="wordnet-trial")
    futures = [pool.submit(worker) for _ in range(slots)]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
    except BaseException:                            # Ctrl-C, or a launcher's own error
        search.close()
        launch.stop()
        wait(futures, timeout=STOP_SECONDS)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class _InThisProcess:
    """One trial after the other, in this process (the data loaded once)."""

    def __init__(self, recipe, stages, out, data_dir, track, dataset, search, label, echo,
                 progress):
        self.recipe, self.stages, self.out, self.data_dir = recipe, stages, out, data_dir
        self.track, self.dataset, self.search, self.label = track, dataset, search, label
        self.echo, self.progress = echo, progress

    def __call__(self, trial: Trial) -> dict:
        self.echo(f"== {trial.folder}")
        judge = partial(self.search.report, trial.number)     # (point, CE) -> stop?
        status, metrics, error = "FINISHED", {}, None
        try:
            metrics = run(self.recipe, trial.values, self.stages, self.out / trial.folder,
                          self.data_dir, self.track, self.label(trial.values), echo=self.echo,
                          progress=self.progress, dataset=self.dataset, nested=True,
                          judge=judge)
        except Pruned as e:
            status, error = "PRUNED", str(e)
            self.echo(f"{trial.folder}: {e}")
        except PipelineError as e:
            status, error = "FAILED", str(e)
            self.echo(f"{trial.folder}: {e}")
        manifest = RunDir(self.out / trial.folder).read_json(MANIFEST) or {}
        return trial_row(trial, self.label(trial.values), status, metrics, manifest, error)

    def stop(self):
        pass                                         # Ctrl-C reaches the run itself

    def close(self):
        pass


class _Processes:
    """Trials as ``wordnet-pipeline run`` processes, each with ``threads`` threads (its
    BLAS's too), its output in its folder's trial.log, its MLflow run nested under the
    sweep's by ID."""

    def __init__(self, source, stages, out, data_dir, where, parent_run_id, search, label,
                 threads, echo):
        self.source, self.stages, self.out, self.data_dir = source, stages, out, data_dir
        self.where, self.parent_run_id, self.search, self.label = where, parent_run_id, search, label
        self.env = os.environ | thread_env(threads or 1)
        self.echo = echo
        self.running, self.lock = set(), threading.Lock()

    def __call__(self, trial: Trial) -> dict:
        folder, label = self.out / trial.folder, self.label(trial.values)
        folder.mkdir(parents=True, exist_ok=True)
        command = run_command(self.source, trial.values, self.stages, folder, self.data_dir,
                              label, self.where, self.parent_run_id)

        def started(process):
            with self.lock:
                self.running.add(process)

        status = run_process(command, folder / TRIAL_LOG, self.env,
                             partial(self.search.report, trial.number), started)
        with self.lock:
            self.running = {p for p in self.running if p.poll() is None}
        return finished_trial(trial, label, status, RunDir(folder),
                              (folder / TRIAL_LOG).read_text(errors="replace"), self.echo)

    def stop(self):
        with self.lock:
            for process in self.running:
                if process.poll() is None:
                    process.terminate()              # SIGTERM: each ends its run KILLED

    def close(self):
        pass


def _earlier_trials(parent_run_id: str, recipe: Recipe, search: Search) -> list[dict]:
    """The rows of an earlier sweep's finished and pruned trials, told to ``search``."""
    from mlflow import MlflowClient
    client, names = MlflowClient(), registry.of(recipe.config).figures
    try:
        parent = client.get_run(parent_run_id)
    except Exception as e:                       # MLflow and HTTP errors alike
        raise PipelineError(f"--resume {parent_run_id}: no such run ({tracking.first_line(e)})"
                            ) from None
    logged = {key: value for key, value in parent.data.params.items()
              if key.startswith("sweep.")}
    if "wordnet.sweep.runs" not in parent.data.tags or logged != search.params():
        raise PipelineError(f"--resume {parent_run_id}: not a sweep of these --set values "
                            f"(it swept {logged or 'nothing'})")
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=10000)
    rows = []
    for child in children:
        pruned = "wordnet.pruned" in child.data.tags
        if child.info.status != "FINISHED" and not pruned:
            continue                             # run again
        values = _planned(recipe, search, {key: child.data.params.get(key)
                                           for key in search.space})
        curve = client.get_metric_history(child.info.run_id, names.valid_curve)
        intermediate = {n: m.value for n, m in enumerate(sorted(curve, key=lambda m: m.step), 1)}
        finals = {k: v for k, v in child.data.metrics.items()
                  if k not in CURVES + (names.train_curve, names.valid_curve)}
        search.skip(values, finals.get(names.select_by), intermediate, pruned)
        rows.append({"run": child.info.run_name, **values,
                     "status": "PRUNED" if pruned else "FINISHED", **finals,
                     "run_id": child.info.run_id, "folder": "-"})
    return rows


def _planned(recipe: Recipe, search: Search, params: dict) -> dict:
    """A child run's swept values as the search plans them (a grid's ``1e-1`` is the
    run's ``0.1``), or as the run has them (TPE plans nothing)."""
    config = with_overrides(recipe, params).config
    for values in search.planned or ():
        if all(getattr(with_overrides(recipe, values).config, key, values[key]) ==
               getattr(config, key, params[key]) for key in values):
            return values
    return params


def _summarise(parent, recipe: Recipe, search: Search, rows: list[dict], out: Path) -> None:
    names = registry.of(recipe.config).figures
    rows.sort(key=lambda row: _rank(row, names.select_by))
    keys = list(search.space)
    best = rows[0] if rows and names.select_by in rows[0] else None
    RunDir(out).write_json(SWEEP, rows)
    atomic_write(out / "sweep.md", summary_markdown(rows, keys, names).encode())
    atomic_write(out / "sweep.csv", summary_csv(rows, keys, names).encode())
    parent.set_tags({"mlflow.note.content": description(recipe, search, rows, best)})
    if best:
        parent.set_tags({"wordnet.best_run_id": str(best["run_id"]),
                         "wordnet.best_run_name": best["run"]})
        parent.log_metrics({key: best[key] for key in best
                            if "/" in key and isinstance(best[key], (int, float))})
    parent.log_metrics({"sweep/runs": len(rows),
                        "sweep/failed": sum(r["status"] in ("FAILED", "KILLED") for r in rows),
                        "sweep/pruned": sum(r["status"] == "PRUNED" for r in rows)})
    parent.log_artifacts(out / SWEEP, out / "sweep.md", out / "sweep.csv")


def _rank(row: dict, select_by: str):
    """Finished runs by their validation figure (``select_by``: the CE, the window
    scorer's loss), then those without one, the pruned, the failed."""
    value = row.get(select_by)
    order = {"FINISHED": 0, "PRUNED": 1}.get(row["status"], 2)
    return (order, value is None or not math.isfinite(value),
            value if value is not None else 0.0)


def description(recipe: Recipe, search: Search, rows: list[dict], best: dict | None) -> str:
    failed = [r for r in rows if r["status"] in ("FAILED", "KILLED")]
    pruned = sum(r["status"] == "PRUNED" for r in rows)
    text = (f"A sweep of the {recipe.name} recipe over {search.describe()}: {len(rows)} of "
            f"{search.total} runs, nested below"
            + (f", {pruned} pruned ({search.prune})" if pruned else "")
            + (f", {len(failed)} failed" if failed else "") + ".")
    for r in failed:
        text += f"\n- {r['run']}: {r['status']}, {r.get('error', 'no error said')}"
    names = registry.of(recipe.config).figures
    if best:
        text += (f"\n\nBest by {names.objective}: {best['run']} (run {best['run_id']}), "
                 f"{names.objective} {best[names.select_by]:.6f}.")
    elif rows:
        text += (f"\n\nNo run has a {names.objective} (the validate stage did not run): "
                 "no best run.")
    return text + (f"\n\n{recipe.description}" if recipe.description else "")


def summary_markdown(rows: list[dict], keys: list[str], names: Figures) -> str:
    header = ["rank", "run", *keys, *names.shown, "status", "run ID"]
    lines = ["# Sweep summary", "", f"Sorted by {names.select_by} (lower is better).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n, r in enumerate(rows, 1):
        cells = [str(n), r["run"], *(str(r[k]) for k in keys),
                 *(_shown(r.get(k)) for k in names.shown),
                 r["status"] + (f": {r['error']}" if "error" in r else ""), str(r["run_id"] or "-")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[dict], keys: list[str], names: Figures) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "run", *keys, *names.shown, "status", "error", "run_id", "folder"])
    for n, r in enumerate(rows, 1):
        writer.writerow([n, r["run"], *(r[k] for k in keys), *(r.get(k, "") for k in names.shown),
                         r["status"], r.get("error", ""), r["run_id"] or "", r["folder"]])
    return buffer.getvalue()


def _shown(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
