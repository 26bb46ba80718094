#!/usr/bin/env python
"""The run around the training: how much of `wordnet-pipeline run --stage all` is not
training.

Each run is the command a user types, `wordnet-pipeline run --stage all` (the
reference recipe unless --pipeline says otherwise), in a temporary folder of its
own, tracked into a SQLite MLflow store (``MLFLOW_TRACKING_URI=sqlite:///…``): a new
one for each run (``--store per-run``, the default: each run creates MLflow's tables,
seconds of migrations), or one store for all the runs, its tables made before the
first (``--store shared``: the usual case of a store used before).  Of each run it
reports the wall time, the trainer's own training seconds (``History.seconds``:
``perf/train_seconds`` in the run's metrics.json) and the time outside training, wall
minus training, as a share of the training; the summary is the median over the runs.

With ``--against EXE`` every round runs another build's ``wordnet-pipeline`` too (e.g.
a checkout of the commit before a change, in its own virtualenv), the two one after
the other, first one then the other in turn: a pair sees about the same machine, and
the median of the pairs' differences is what the change was worth.

Where the time outside training goes is read from the run's output, each line
timestamped as it comes (the child's output unbuffered): the time up to the line
``trained: …``, minus the training, is before it (starting Python, importing,
connecting to MLflow, loading the data, the run's parameters) plus the few saves
after it; the time after that line is what follows the training (logging the model,
evaluating, the reproduction checks, waiting for the plots, the registry).

Run it from the repository root, with OpenBLAS's core-type overrides removed:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_run.py --runs 5

See benchmarks/README.md.  It imports nothing of wordnet's: the runs are the command.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import CpuMeter, pipeline_executable  # beside this script

TRAINED = "trained: "                   # the line the run prints once the training ended
# The lines that end the run's phases (the last of each), in order: the time between two
# is what the phase took ("data" to "trained": the training, and the saves around it)
MARKS = (("data", "data: "), ("trained", TRAINED), ("valid", "valid: "), ("test", "test: "),
         ("reproduce", "reproduce: "), ("registered", "registered: "), ("done", "done: "))


def timed_run(exe: str, pipeline: str, data_dir: str | None, folder: Path, store: Path,
              machine: CpuMeter, timeout: float) -> dict:
    """One `EXE run --stage all` in ``folder`` (its cwd and output), tracked into ``store``."""
    out = folder / "out"
    cmd = [exe, "run", "--stage", "all", "--pipeline", pipeline, "--out", str(out)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store}", PYTHONUNBUFFERED="1")
    lines, errors = [], []
    load_before, before = os.getloadavg()[0], machine.sample()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def drain():                                        # stderr: the progress line, warnings
        errors.extend(proc.stderr)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - start
    reader.join()
    others = machine.foreign(before, machine.sample())
    result = {"cmd": " ".join(["wordnet-pipeline"] + cmd[1:]).replace(str(folder), "TMP"),
              "exe": exe, "returncode": proc.returncode, "wall_seconds": wall,
              "load_before": load_before, "load_after": os.getloadavg()[0],
              "others_cores": others, "lines": lines}
    if proc.returncode != 0:
        result["stderr_tail"] = "".join(errors[-10:])
        return result
    metrics = json.loads((out / "metrics.json").read_text())
    train = metrics["perf/train_seconds"]
    trained_at = next((t for t, line in lines if line.startswith(TRAINED)), math.nan)
    result |= {"train_seconds": train, "outside_seconds": wall - train,
               "share": (wall - train) / train,
               "before_seconds": trained_at - train, "after_seconds": wall - trained_at,
               "phases": phases(lines, wall, train)}
    return result


def phases(lines, wall: float, train: float) -> dict[str, float]:
    """Seconds from one marked line to the next (MARKS; "start" to "data", "done" to
    the exit), the training's own seconds taken out of "data" to "trained"."""
    at = {name: max((t for t, line in lines if line.startswith(prefix)), default=None)
          for name, prefix in MARKS}
    out, previous, last = {}, "start", 0.0
    for name, _ in MARKS:
        if at[name] is not None:
            out[f"{previous}-{name}"] = at[name] - last - (train if name == "trained" else 0.0)
            previous, last = name, at[name]
    out[f"{previous}-exit"] = wall - last
    return out


def show(label: str, r: dict) -> None:
    if r["returncode"] != 0:
        print(f"  {label}: FAILED (exit {r['returncode']})\n    "
              + "\n    ".join(r.get("stderr_tail", "").strip().splitlines()[-5:]))
        return
    print(f"  {label}: wall {r['wall_seconds']:6.1f} s, training {r['train_seconds']:6.1f} s, "
          f"outside {r['outside_seconds']:5.1f} s = {r['share']:6.1%} of the training "
          f"(before 'trained:' {r['before_seconds']:4.1f} s, after {r['after_seconds']:4.1f} s); "
          f"load {r['load_before']:.1f}, others used {r['others_cores']:.2f} cores")


def summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["returncode"] == 0]
    if not ok:
        return {"runs": 0}
    med = lambda key: statistics.median(r[key] for r in ok)      # noqa: E731
    return {"runs": len(ok), **{key: med(key) for key in (
        "wall_seconds", "train_seconds", "outside_seconds", "share", "before_seconds",
        "after_seconds", "others_cores", "load_before")}, "phases": phase_medians(ok)}


def phase_medians(runs: list[dict]) -> dict[str, float]:
    ok = [r["phases"] for r in runs if r["returncode"] == 0]
    return {key: statistics.median(p[key] for p in ok if key in p)
            for key in dict.fromkeys(k for p in ok for k in p)}


def print_summary(name: str, s: dict) -> None:
    if not s["runs"]:
        print(f"  {name}: no run finished")
        return
    print(f"  {name}: median of {s['runs']} run(s): share outside training {s['share']:.1%} "
          f"(wall {s['wall_seconds']:.1f} s, training {s['train_seconds']:.1f} s, outside "
          f"{s['outside_seconds']:.1f} s: before 'trained:' {s['before_seconds']:.1f} s, "
          f"after {s['after_seconds']:.1f} s); others used {s['others_cores']:.2f} cores, "
          f"load {s['load_before']:.1f}")
    print("    phases (s, median; data-trained without the training): " + ", ".join(
        f"{key} {seconds:.2f}" for key, seconds in s["phases"].items()))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs (pairs, with --against); default 5")
    ap.add_argument("--pipeline", default="reference", help="the recipe (default reference)")
    ap.add_argument("--data-dir", help="passed to the runs (default: theirs)")
    ap.add_argument("--exe", default=pipeline_executable(),
                    help="the wordnet-pipeline measured (default: this Python's)")
    ap.add_argument("--against", metavar="EXE",
                    help="another build's wordnet-pipeline, run in alternation with --exe")
    ap.add_argument("--store", choices=("per-run", "shared"), default="per-run",
                    help="a new SQLite store for each run (default), or one for all the runs, "
                         "its tables made before the first")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds a run may take")
    ap.add_argument("--keep", metavar="DIR", help="keep each run's folder (its store, "
                    "output, plots) under DIR instead of deleting it")
    ap.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.exe:
        print("no wordnet-pipeline found: pass --exe", file=sys.stderr)
        return 2
    sides = {"this": args.exe} | ({"against": args.against} if args.against else {})
    machine = CpuMeter()
    print(f"== The run around the training: `wordnet-pipeline run --stage all --pipeline "
          f"{args.pipeline}`, tracked into "
          + ("a new SQLite store each ==" if args.store == "per-run" else
             "one SQLite store, its tables made first =="))
    for name, exe in sides.items():
        print(f"  {name}: {exe}")
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    keep = Path(args.keep) if args.keep else None
    with tempfile.TemporaryDirectory(prefix="wordnet-bench-run-") as tmp:
        root = keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        shared = root / "mlflow.db"
        if args.store == "shared":                      # MLflow's tables, made untimed
            subprocess.run([sys.executable, "-c", "import sys, mlflow; mlflow.MlflowClient("
                            "sys.argv[1]).search_experiments()", f"sqlite:///{shared}"],
                           cwd=root, check=True, capture_output=True)
        for n in range(args.runs):
            order = list(sides) if n % 2 == 0 else list(sides)[::-1]
            for name in order:
                folder = root / f"{n + 1}-{name}"
                folder.mkdir(parents=True)
                store = shared if args.store == "shared" else folder / "mlflow.db"
                r = timed_run(sides[name], args.pipeline, args.data_dir, folder, store, machine,
                              args.timeout)
                runs[name].append(r)
                show(f"run {n + 1} {name:7s}", r)
    print()
    results = {"pipeline": args.pipeline, "store": args.store, "sides": sides, "runs": runs,
               "summary": {name: summary(rs) for name, rs in runs.items()}}
    for name in sides:
        print_summary(name, results["summary"][name])
    if args.against:
        pairs = [(a, b) for a, b in zip(runs["this"], runs["against"])
                 if a["returncode"] == 0 and b["returncode"] == 0]
        if pairs:
            diff = statistics.median(a["share"] - b["share"] for a, b in pairs)
            saved = statistics.median(b["outside_seconds"] - a["outside_seconds"]
                                      for a, b in pairs)
            ratio = statistics.median(a["outside_seconds"] / b["outside_seconds"]
                                      for a, b in pairs)
            results["pairs"] = {"share_difference": diff, "outside_seconds_saved": saved,
                                "outside_ratio": ratio}
            print(f"  pairs: this minus against, median of {len(pairs)}: share {diff:+.1%} "
                  f"points; outside training {saved:.1f} s less, {ratio:.2f} times against's")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    failed = sum(r["returncode"] != 0 for rs in runs.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
