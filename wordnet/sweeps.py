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
from contextlib import nullcontext
from pathlib import Path

from . import tracking
from .data import load_dataset
from .fileio import atomic_write
from .model import default_threads
from .pipeline import PipelineError, run
from .recipes import Recipe, with_overrides
from .rundir import MANIFEST, SWEEP, RunDir, check_writable
from .tracking import NoRun

SELECT_BY = "valid/final_ce"                  # lower is better
SHOWN = ("valid/final_ce", "test/ce", "valid/top1", "train/final_ce", "perf/updates_per_second")


def sweep(recipe: Recipe, grid: list[dict[str, str]], stages, out: Path, data_dir: Path | None,
          track: bool = False, run_name: str | None = None, echo=print,
          progress=None, dataset=None) -> list[dict]:
    """One run per combination of ``grid``, nested under one parent run.  A run that
    fails is reported and the sweep goes on.  Returns a row per run, best first."""
    dataset = dataset or load_dataset(data_dir)
    check_writable(out)
    axes = {key: list(dict.fromkeys(c[key] for c in grid)) for key in grid[0]}
    varying = [key for key, values in axes.items() if len(values) > 1]   # first in the names
    name = run_name or f"sweep {' × '.join(axes)} · {recipe.name}"
    rows = []
    with tracking.start_run(name) if track else nullcontext(NoRun()) as parent:
        parent.log_params({f"sweep.{key}": ",".join(values) for key, values in axes.items()})
        parent.set_tags({"wordnet.recipe": recipe.name, "wordnet.sweep.runs": str(len(grid)),
                         **tracking.machine_tags(default_threads())})
        for combination in grid:
            folder = "-".join(f"{k}={v}" for k, v in combination.items())
            echo(f"== {folder}")
            label = with_overrides(recipe, combination).label(first=varying)
            row = {"run": label, **combination}
            try:
                metrics = run(recipe, combination, stages, out / folder, data_dir, track,
                              label, echo=echo, progress=progress, dataset=dataset, nested=True)
                row |= {"status": "FINISHED", **metrics}
            except PipelineError as e:
                echo(f"{folder}: {e}")
                row |= {"status": "FAILED", "error": str(e)}
            manifest = RunDir(out / folder).read_json(MANIFEST) or {}
            rows.append(row | {"run": manifest.get("mlflow_run_name") or row["run"],
                               "run_id": manifest.get("mlflow_run_id"), "folder": folder})
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
