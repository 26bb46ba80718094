"""bench.py's optional sections: --tracking (the pipelines with and without MLflow),
--inference (next-word predictions for many contexts) and --profile (where a fast
update spends its time, kernel by kernel)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import CpuMeter, blas_threads, pipeline_executable
from rates import run_for
from rows import TrainerTiming, cycle_batches

from wordnet.data.dataset import load_dataset
from wordnet.models.fourgram import FourGramConfig, Model
from wordnet.training.trainer import Trainer

TRACKING_RECIPES = ("quick", "reference")


def tracking_section(data_dir: Path, repeats: int, foreign_limit: float,
                     wait_idle: float) -> dict:
    """Wall time of `wordnet-pipeline run --pipeline RECIPE`, untracked then tracked,
    ``repeats`` pairs per recipe, each run in a fresh temporary folder.

    The tracked runs share one SQLite store in the temporary folder (nothing lands
    in the repository); a first tracked quick run creates it and is reported on its
    own ("new store"), so that the pairs compare an untracked run with a run
    tracked into an existing store, the usual case.  A pair's difference is the
    tracking's cost; the median over the pairs is reported.
    """
    print("\n== Tracking overhead: wordnet-pipeline run, untracked and tracked ==")
    exe = pipeline_executable()
    reason = None
    if exe is None:
        reason = "no wordnet-pipeline console script"
    else:
        probe = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            reason = f"`wordnet-pipeline run --help` failed: {last}"
    if reason:
        print(f"skipped: wordnet-pipeline not available ({reason})")
        return {"skipped": reason}

    results = {"errors": []}
    meter = CpuMeter()
    with tempfile.TemporaryDirectory(prefix="wordnet-bench-") as tmp:
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{Path(tmp) / 'mlflow.db'}")

        def timed(recipe: str, tracked: bool) -> float | None:
            workdir = Path(tempfile.mkdtemp(dir=tmp))        # the run's cwd: artifacts land here
            cmd = [exe, "run", "--pipeline", recipe, "--data-dir", str(data_dir),
                   "--out", str(workdir / "out")] + ([] if tracked else ["--no-tracking"])
            meter.wait_idle(foreign_limit, wait_idle)
            before, t0 = meter.sample(), time.perf_counter()
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            foreign = meter.foreign(before, meter.sample())
            shown = " ".join(["wordnet-pipeline"] + cmd[1:]).replace(str(workdir), "TMP")
            if proc.returncode != 0:
                tail = "\n    ".join(proc.stderr.strip().splitlines()[-5:])
                print(f"  {shown}: FAILED (exit {proc.returncode})\n    {tail}")
                results["errors"].append({"cmd": shown, "returncode": proc.returncode,
                                          "stderr_tail": proc.stderr[-2000:]})
                return None
            print(f"  {shown}\n      {seconds:7.2f} s  (others used {foreign:.2f} cores)")
            return seconds

        new_store = timed("quick", True)
        if new_store is None:
            return results
        results["quick_new_store_seconds"] = new_store
        for recipe in TRACKING_RECIPES:
            pairs = []
            for _ in range(repeats):
                untracked = timed(recipe, False)
                tracked = timed(recipe, True) if untracked is not None else None
                if tracked is None:
                    return results
                pairs.append((untracked, tracked))
            cost = statistics.median(t - u for u, t in pairs)
            untracked = statistics.median(u for u, _ in pairs)
            results[recipe] = {"pairs": pairs, "overhead_seconds": cost,
                               "untracked_seconds": untracked}
            print(f"  {recipe}: tracking costs {cost:+.2f} s ({cost / untracked:+.0%} of the "
                  f"untracked {untracked:.2f} s), median of {len(pairs)} pair(s)")
    quick = results["quick"]["untracked_seconds"]
    print(f"  a new store: the first tracked quick run took {new_store:.2f} s")
    # The floor any MLflow tracking pays: importing it, in a fresh interpreter.
    floor = min(_seconds([sys.executable, "-c", "import mlflow"]) for _ in range(repeats))
    floor -= min(_seconds([sys.executable, "-c", "import numpy"]) for _ in range(repeats))
    results["mlflow_import_seconds"] = floor
    print(f"  importing mlflow alone takes {floor:.2f} s more than importing numpy: "
          f"{floor / quick:.0%} of the untracked quick run")
    return results


def _seconds(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------
# --inference: next-word predictions for many contexts at once
# ----------------------------------------------------------------------------

INFERENCE_CONTEXTS = 10_000


def inference_section(s, seconds: float) -> dict:
    """Contexts per second: training's forward pass (fast backend, batches of N), then
    10,000 test contexts through Model.predict_proba, Predictor.predict_batch (the
    Python API: the exact backend, the top 5 words) and the pyfunc model, loaded
    in this process as `mlflow models serve` loads it."""
    import mlflow

    from wordnet import tracking
    from wordnet.models.fourgram import Buffers
    from wordnet.models.predictor import Predictor
    print(f"\n== Inference: contexts per second, {INFERENCE_CONTEXTS:,} test contexts ==")
    dataset = load_dataset(s.data_dir)
    contexts = np.ascontiguousarray(dataset.test[:INFERENCE_CONTEXTS, :-1])
    texts = [" ".join(dataset.vocab.words[i] for i in row) for row in contexts]
    checkpoint_path, vocab_path = s.data_dir / "model9-3000.bin", s.data_dir / "vocab.txt"
    predictor = Predictor.load(checkpoint_path, vocab_path)
    fast = Model(predictor.model.params(), "fast")
    buf, M, N = Buffers(fast, s.cfg.batch_size), len(s.x), s.cfg.batch_size
    rows = []

    def row(label, calls_per_second, per_call):
        rows.append((label, calls_per_second * per_call))

    with fast.single_threaded_blas():
        row(f"training's forward pass (fast, batches of {N})",
            median_rate(cycle_batches(lambda b: fast.forward(s.x[b], buf), M), seconds), N)
    for model in (fast, predictor.model):
        row(f"Model.predict_proba ({model.backend})",
            median_rate(lambda: model.predict_proba(contexts), seconds), len(contexts))
    row("Predictor.predict_batch, top 5 (exact)",
        median_rate(lambda: predictor.predict_batch(contexts, 5), seconds), len(contexts))
    with tempfile.TemporaryDirectory(prefix="wordnet-pyfunc-") as tmp:
        mlflow.pyfunc.save_model(
            Path(tmp) / "model", python_model=str(tracking.SERVING_CODE),
            artifacts={"checkpoint": str(checkpoint_path), "vocab": str(vocab_path)},
            input_example=([texts[0]], {"top_k": 5}), pip_requirements=["wordnet"])
        pyfunc = mlflow.pyfunc.load_model(str(Path(tmp) / "model"))
        row("pyfunc model.predict, top 5",
            median_rate(lambda: pyfunc.predict(texts, params={"top_k": 5}), seconds),
            len(contexts))
    forward = rows[0][1]
    for label, rate in rows:
        print(f"  {label:<48} {rate:>10,.0f} contexts/s   {rate / forward:5.2f} x training's")
    return {label: rate for label, rate in rows}


def median_rate(step, seconds: float, repeats: int = 3) -> float:
    run_for(step, min(seconds, 0.3))                      # warm up
    return statistics.median(run_for(step, seconds) for _ in range(repeats))


# ----------------------------------------------------------------------------
# --profile: where a step of our fast backend spends its time
# ----------------------------------------------------------------------------

def gemm_names(cfg: FourGramConfig, V: int, D: int) -> dict:
    """The six products of a step, keyed by (op(A) rows, op(B) columns, K, trans_a, trans_b)."""
    N, h1, h2 = cfg.batch_size, cfg.embedding_size, cfg.hidden_size
    return {(h2, N, D * h1, False, False): "gemm z2 = W2 y1",
            (V, N, h2, False, False): "gemm z3 = W3 y2",
            (V, h2, N, False, True): "gemm dW3 = dz3 y2ᵀ",
            (h2, N, V, True, False): "gemm dy2 = W3ᵀ dz3",
            (h2, D * h1, N, False, True): "gemm dW2 = dz2 y1ᵀ",
            (D * h1, N, h2, True, False): "gemm dy1 = W2ᵀ dz2"}


@contextlib.contextmanager
def kernel_timers(modules, names: dict):
    """Wrap every compiled kernel that ``modules`` imported from the package's
    extension modules (``wordnet._*``) with a timer, for the duration of the
    context; yields {label: [seconds, calls]}.  gemm calls are told apart by
    their shapes (``names``, from gemm_names)."""
    totals: dict[str, list] = {}
    originals = {}
    for module in modules:
        for attr, fn in vars(module).items():
            if callable(fn) and str(getattr(fn, "__module__", "")).startswith("wordnet._"):
                originals[module, attr] = fn

    def wrap(attr, fn):
        def timed(*args, **kwargs):
            label = attr
            if attr == "gemm" and len(args) >= 2:
                ta = bool(args[3]) if len(args) > 3 else bool(kwargs.get("trans_a", False))
                tb = bool(args[4]) if len(args) > 4 else bool(kwargs.get("trans_b", False))
                a, b = args[0].shape, args[1].shape
                m, k = (a[1], a[0]) if ta else a
                n = b[0] if tb else b[1]
                label = names.get((m, n, k, ta, tb), f"gemm {m}x{k}·{k}x{n}")
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            cell = totals.setdefault(label, [0.0, 0])
            cell[0] += time.perf_counter() - t0
            cell[1] += 1
            return result
        return timed

    try:
        for (module, attr), fn in originals.items():
            setattr(module, attr, wrap(attr, fn))
        yield totals
    finally:
        for (module, attr), fn in originals.items():
            setattr(module, attr, fn)


def profile_fast(s, seconds: float, foreign_limit: float, wait_idle: float) -> dict | None:
    """Per kernel, the time of one fast update on one core.

    Trainer.run drives its minibatches from compiled code, out of Python's
    sight, so this runs the same update through the model's readable path
    (Model.loss, Model.backward, Momentum.step: the kernels one call at a
    time) with one thread, every compiled kernel that the model calls
    wrapped in a timer (about 0.2 µs per call added).  The last line compares
    that path with Trainer.run on one core.
    """
    import wordnet.models.base as base
    import wordnet.models.fourgram as fourgram
    print("\n== Where a fast update spends its time: the kernels one by one, one core ==")
    model = Model(s.params, "fast", threads=1)
    cfg = dataclasses.replace(s.cfg, backend="fast")
    trainer = Trainer(model, cfg)
    buf, grads, part, opt = trainer.buffers, trainer.grads, trainer.part, trainer.optimizer
    M = len(s.x)

    def update(b):
        model.loss(s.x[b], s.t[b], buf)
        model.backward(s.x[b], s.t[b], buf, grads, part)
        opt.step(grads)

    step = cycle_batches(update, M)
    meter = CpuMeter()
    with blas_threads(1):
        run_for(step, 0.3)
        meter.wait_idle(foreign_limit, wait_idle)
        with kernel_timers((base, fourgram), gemm_names(s.cfg, s.V, s.D)) as totals:
            before = meter.sample()
            t0 = time.perf_counter()
            rate = run_for(step, seconds)
            elapsed = time.perf_counter() - t0
            foreign = meter.foreign(before, meter.sample())
        fused = TrainerTiming(Model(s.params, "fast", threads=1), cfg, s.train, 1)
        fused(0.3)
        fused_rate = max(fused(seconds / 2) for _ in range(2))
    updates = round(rate * elapsed)
    per_update = 1e6 / rate
    kernels = {label: {"us_per_update": 1e6 * sec / updates, "calls_per_update": n / updates}
               for label, (sec, n) in sorted(totals.items(), key=lambda kv: -kv[1][0])}
    in_kernels = sum(v["us_per_update"] for v in kernels.values())
    gemms = sum(v["us_per_update"] for k, v in kernels.items() if k.startswith("gemm"))
    print(f"  {updates} updates at {rate:.0f}/s with the timers (other processes used "
          f"{foreign:.2f} cores meanwhile); µs per update:")
    for label, v in kernels.items():
        calls = v["calls_per_update"]
        print(f"  {label:<26}{v['us_per_update']:9.1f}  {v['us_per_update'] / per_update:6.1%}"
              f"  ({calls:.0f} call{'s' if round(calls) != 1 else ''})")
    print(f"  {'outside the kernels':<26}{per_update - in_kernels:9.1f}  "
          f"{(per_update - in_kernels) / per_update:6.1%}  (Python, the timers)")
    print(f"  {'the update':<26}{per_update:9.1f}  100.0%: the six GEMMs {gemms:.0f} µs, "
          f"the rest {per_update - gemms:.0f} µs")
    print(f"  Trainer.run on one core: {1e6 / fused_rate:.1f} µs per update ({fused_rate:.0f}/s)")
    return {"updates_per_second": rate, "foreign_cpu": foreign, "us_per_update": per_update,
            "kernels": kernels, "trainer_one_core_updates_per_second": fused_rate}
