"""Sweeps: the trials of a search (:mod:`wordnet.sweeps.search`), run by an executor
(:mod:`wordnet.sweeps.executor`: here, in processes of their own or on Ray), nested
under a parent MLflow run that says what was swept and which run was best.

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
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from wordnet import tracking
from wordnet.data.dataset import load_dataset
from wordnet.fileio import atomic_write
from wordnet.models import registry
from wordnet.models.kind import Figures
from wordnet.runs.recipes import Recipe, with_overrides
from wordnet.runs.rundir import SWEEP, RunDir, check_writable
from wordnet.runs.stages import PipelineError
from wordnet.sweeps import executor
from wordnet.sweeps.executor import Executor, Options, TrialSpec
from wordnet.sweeps.search import Search
from wordnet.tracking import NoRun

CURVES = ("train/batch_ce_mean10", "train/epoch")   # besides each model's two (figures.py)
STOP_SECONDS = 60                             # Ctrl-C: the bound on the trials' ending


@dataclass(frozen=True)
class Sweep:
    """A sweep: ``search`` over ``recipe``, each trial running ``stages`` into a folder
    of ``out``, where ``options`` say (:mod:`wordnet.sweeps.executor`)."""
    recipe: Recipe
    search: Search
    stages: tuple[str, ...]
    out: Path
    data_dir: Path | None = None
    options: Options = field(default_factory=lambda: Options(jobs=1, tracked=False))
    source: str | None = None            # the recipe's name or file [default: its name]
    run_name: str | None = None          # the parent run's
    resume: str | None = None            # an earlier sweep's parent run: go on with it


def sweep(plan: Sweep, echo=print, progress=None, dataset=None) -> list[dict]:
    """The trials of ``plan.search``, nested under one parent run; a row per trial, best
    first.  ``plan.resume``, the parent run of an earlier sweep: its finished and pruned
    trials are not run again.  ``progress`` and ``dataset`` are for trials run in this
    process."""
    recipe, search, out, options = plan.recipe, plan.search, plan.out, plan.options
    options = executor.configure(options)
    dataset = dataset or load_dataset(plan.data_dir)
    check_writable(out)
    varying = [key for key, axis in search.space.items()
               if axis.kind != "grid" or len(axis.values) > 1]      # first in the names
    name = plan.run_name or f"sweep {' × '.join(search.space)} · {recipe.name}"
    label = lambda values: with_overrides(recipe, values).label(first=varying)  # noqa: E731
    earlier, said = [], None
    if plan.resume:
        earlier = _earlier_trials(plan.resume, recipe, search)
        said = (f"resuming sweep run {plan.resume}: {len(earlier)} trial(s) done, "
                f"{search.total - len(earlier)} to run")
    context = (tracking.start_run(name, run_id=plan.resume) if options.tracked
               else nullcontext(NoRun()))
    with context as parent:
        parent.log_params(search.params())
        parent.set_tags({"wordnet.recipe": recipe.name, "wordnet.sweep.runs": str(search.total),
                         "wordnet.sweep.search": search.describe(),
                         "wordnet.sweep.prune": search.prune,
                         "wordnet.sweep.executor": options.executor,
                         "wordnet.sweep.folder": str(Path(out).resolve()),
                         **tracking.machine_tags(options.threads)})     # each trial's
        spec = TrialSpec(recipe, plan.source or recipe.name, tuple(plan.stages), out,
                         plan.data_dir, tracking.current_store() if options.tracked else None,
                         parent.run_id, search, label, options, echo, progress, dataset)
        launch = executor.start(spec)
        echo(f"sweep: {search.total} trials ({recipe.name} recipe, {launch.describe()}) "
             f"-> {out}/")
        if parent.run_id:                            # its page: tracking.store.page_url
            echo(f"MLflow run {parent.run_name!r}: {parent.page}")
        if said:
            echo(said)
        parent.set_tags({"wordnet.sweep.jobs": str(launch.slots)})   # trials at once
        rows = list(earlier)
        try:
            _drive(search, launch, rows, registry.of(recipe.config).figures.select_by)
        finally:                                     # Ctrl-C too: the summary of what ran
            launch.close()
            _end_stopped_trials(parent)
            _summarise(parent, recipe, search, rows, out)
    return rows


def _drive(search: Search, launch: Executor, rows: list, select_by: str) -> None:
    """Hand out the search's trials to the executor's slots until none is left; each
    trial's row into ``rows``, its ``select_by`` figure to the search.  Ctrl-C: no new
    trial, the running ones stopped."""
    def worker():
        while (trial := search.next()) is not None:
            row = launch(trial)
            search.finish(trial.number, row["status"], row.get(select_by))
            rows.append(row)

    if launch.slots == 1:
        worker()                                     # in the main thread: signals reach it
        return
    pool = ThreadPoolExecutor(launch.slots, thread_name_prefix="wordnet-trial")
    futures = [pool.submit(worker) for _ in range(launch.slots)]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
    except BaseException:                            # Ctrl-C, or an executor's own error
        search.close()
        launch.stop()
        wait(futures, timeout=STOP_SECONDS)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _end_stopped_trials(parent) -> None:
    """Trials whose process could not end its MLflow run (stopped by Ctrl-C as it
    started, or killed after trials.STOP_SECONDS): ended KILLED by the sweep, which owns
    them, so that none is left RUNNING."""
    if not parent.run_id:
        return
    import mlflow
    try:
        experiment = mlflow.get_run(parent.run_id).info.experiment_id
        left = mlflow.search_runs([experiment], output_format="list", filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent.run_id}' and attributes.status = 'RUNNING'"))
        for run in left:
            tracking.end_orphan(run.info.run_id, "the sweep was stopped before its trial "
                                "could end this run")
    except Exception as e:                           # the store gone: said, not raised
        parent.lose(f"ending the stopped trials' runs failed ({tracking.first_line(e)})")


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
