#!/usr/bin/env python
"""Trials per hour of a sweep, and what ASHA pruning buys, on this machine.

One process runs, each a ``wordnet-pipeline sweep`` of the same TRIALS quick-recipe
trials (a grid of 4 learning rates x 4 hidden sizes when TRIALS is 16), tracked to a
fresh SQLite store of its own:

  * ``sequential``: ``--jobs 1``, the trials one after the other in the sweep's
    process, with all the cores;
  * ``jobs J threads T``: J trial processes at once, T = max(1, cores / J)
    threads each (``--jobs 2,3,4``: also more trials than cores, whose
    single-threaded parts, start-up, logging and plots, can overlap);
  * ``ray``: ``--executor ray`` on a Ray started for the sweep, one thread a trial
    (skipped when ray is not installed);

then a random search of the same number of trials over the same ranges with
``--prune asha``, at the best local setting, against that setting's full grid:
the best validation CE each reached and the CPU time each spent.

Wall times are for the whole command (interpreter start, MLflow, the summary);
CPU time is the sweep's and its trial processes' (Ray's workers are not its
children: not counted).  Also printed: the tracking load a trial puts on the
store (metric points, and log_batch requests of at most 1,000 points).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sweeps.py

takes about 25 minutes on two cores; ``--trials 4 --early-stop 1000`` about 4.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
LEARNING_RATES = (0.05, 0.1, 0.2, 0.4)
HIDDEN_SIZES = (50, 100, 150, 200)
MAX_BATCH = 1000                     # wordnet.tracking.metrics.MAX_BATCH: points per request


def sweep(args: list[str], folder: Path, name: str) -> dict:
    """Run one sweep command; its wall and CPU seconds, rows and store."""
    out, store = folder / name, folder / f"{name}.db"
    command = [str(BIN / "wordnet-pipeline"), "sweep", "--pipeline", "quick", *args,
               "--out", str(out), "--tracking-uri", f"sqlite:///{store}",
               "--experiment", name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                            env=os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rows = json.loads((out / "sweep.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"name": name, "wall": wall, "cpu": cpu, "rows": rows, "store": store}


def best_ce(rows: list[dict]) -> float:
    return min((r["valid/final_ce"] for r in rows if "valid/final_ce" in r), default=math.nan)


def logging_load(store: Path) -> tuple[float, float]:
    """Metric points per finished trial and the log_batch requests they take."""
    with sqlite3.connect(store) as db:
        counts = db.execute(
            "SELECT COUNT(*) FROM metrics JOIN tags ON metrics.run_uuid = tags.run_uuid "
            "WHERE tags.key = 'mlflow.parentRunId' GROUP BY metrics.run_uuid").fetchall()
    points = sum(c for (c,) in counts) / max(1, len(counts))
    return points, points / MAX_BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16, choices=(4, 16),
                        help="trials per sweep: a 2x2 or 4x4 grid")
    parser.add_argument("--early-stop", type=int, default=None,
                        help="minibatches a trial trains (default: the quick recipe's epoch)")
    parser.add_argument("--jobs", type=lambda text: [int(j) for j in text.split(",")],
                        default=[2, 3, 4], help="the --jobs to measure, each with "
                        "max(1, cores / jobs) threads a trial (default 2,3,4)")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the sequential row (vs-sequential figures then vs the first)")
    parser.add_argument("--no-ray", action="store_true", help="skip the ray row")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    options = parser.parse_args()
    side = 4 if options.trials == 16 else 2
    lrs, sizes = LEARNING_RATES[:side], HIDDEN_SIZES[::4 // side][:side]
    base = ["--set", f"hidden_size={','.join(map(str, sizes))}", "--stage", "train",
            "--stage", "validate"]
    if options.early_stop:
        base += ["--set", f"early_stop={options.early_stop}"]
    grid = ["--set", f"learning_rate={','.join(map(str, lrs))}", *base]
    cores = os.cpu_count() or 1
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
        folder = Path(tmp)
        print(f"{options.trials} quick-recipe trials per sweep, {cores} cores", flush=True)
        runs = [] if options.no_sequential else [("sequential", ["--jobs", "1"])]
        for j in options.jobs:
            threads = max(1, cores // j)
            runs.append((f"jobs {j} threads {threads}", ["--jobs", str(j), "--threads",
                                                          str(threads)]))
        if options.no_ray:
            pass
        elif importlib.util.find_spec("ray"):
            runs.append(("ray, 1 thread a trial", ["--executor", "ray", "--threads", "1"]))
        else:
            print("ray is not installed: no ray row (pip install '.[ray]')")
        for name, args in runs:
            results.append(sweep(grid + args, folder, name.replace(" ", "-").replace(",", "")))
            results[-1]["label"] = name
            r = results[-1]
            print(f"  {name:<24} {r['wall']:7.1f} s  {3600 * options.trials / r['wall']:6.0f} "
                  f"trials/h  best valid CE {best_ce(r['rows']):.4f}", flush=True)
        local = [r for r in results if not r["label"].startswith("ray")]
        best = min(local, key=lambda r: r["wall"])
        setting = [a for name, a in runs if name == best["label"]][0]
        space = ["--set", f"learning_rate=loguniform:{min(lrs)}:{max(lrs)}",
                 "--set", f"hidden_size=choice:{','.join(map(str, sizes))}"]
        # base[2:]: the stages and early_stop, not the hidden_size grid (sampled here)
        asha = sweep([*space, *base[2:], "--samples", str(options.trials), "--sampler",
                      "random", "--seed", "0", "--prune", "asha", *setting], folder, "asha")
        pruned = sum(r["status"] == "PRUNED" for r in asha["rows"])
        points, requests = logging_load(best["store"])
        sequential = results[0]                          # or the first row measured

        print(f"\n| sweep of {options.trials} quick trials | wall s | trials/hour | "
              "vs sequential |\n|---|---|---|---|")
        for r in results:
            print(f"| {r['label']} | {r['wall']:.1f} | {3600 * options.trials / r['wall']:.0f} | "
                  f"{sequential['wall'] / r['wall']:.2f}x |")
        ray_rows = [r for r in results if r["label"].startswith("ray")]
        peer = [r for r in results if r["label"] == f"jobs {cores} threads 1"]
        if ray_rows and peer:                            # the same slots, the same threads
            overhead = ray_rows[0]["wall"] - peer[0]["wall"]
            print(f"\nRay's overhead against `--jobs {cores} --threads 1`: "
                  f"{overhead:+.1f} s in all, {overhead * cores / options.trials:+.2f} s per trial")
        print(f"\n| same budget ({options.trials} trials), {best['label']} | best valid CE | "
              f"CPU s | wall s | pruned |\n|---|---|---|---|---|")
        print(f"| full grid | {best_ce(best['rows']):.4f} | {best['cpu']:.0f} | "
              f"{best['wall']:.1f} | 0 |")
        print(f"| random search + ASHA (seed 0) | {best_ce(asha['rows']):.4f} | "
              f"{asha['cpu']:.0f} | {asha['wall']:.1f} | {pruned} |")
        seconds = sequential["wall"] / options.trials
        print(f"\nTracking load of one trial: {points:,.0f} metric points, about "
              f"{math.ceil(requests)} log_batch requests, in about {seconds:.0f} s of a "
              f"trial alone (besides: its parameters, tags, datasets, model and files)")
        if options.json:
            options.json.write_text(json.dumps(
                [{k: v for k, v in r.items() if k != "store"} for r in results + [asha]],
                indent=1, default=str))


if __name__ == "__main__":
    main()
