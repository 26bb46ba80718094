#!/usr/bin/env python
"""Minibatch updates per second of WordNet's training step, against its yardsticks.

One process measures, on the reference configuration (float64, N=100, h1=50,
h2=200, V=250, D=3) and the real training data:

  * our ``fast`` (float64 and float32) and ``exact`` backends, through the
    public API (``Model.initialize`` + ``Trainer(model, config).run(train_rows)``);
  * the same model and update in plain numpy (one BLAS thread);
  * the same model in PyTorch CPU (float64 and float32, two threads), if torch
    is installed;
  * the bare six GEMMs of a step through numpy, as bounds: BLAS's own two
    threads, one thread, and two half-minibatches at once on two Python
    threads with single-threaded BLAS ("the two-core bound").

Every measurement warms up, then runs for a fixed wall time; the repeats go
round-robin over the implementations so that a slow spell of the machine hurts
them all alike.  Other programs only ever slow a run down, so the table
reports the fastest repeat (and the median).  The CPU that other processes
took during each repeat is measured (/proc/stat), and a repeat they disturbed
is measured again, within a budget.  Before timing, the numpy and torch
peers are checked against our fast backend from the same initial weights
(parameters after a few updates agree within 1e-10), so the yardsticks
compute the same thing.

Run it from the repository root with OpenBLAS's core-type overrides unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py

See benchmarks/README.md for the options and how to read the output.  Beside it:
machine.py (the machine: BLAS threads, others' CPU, memory, the environment),
peers.py (the numpy and PyTorch peers, the six GEMMs, their check), rows.py (the
table's rows) and sections.py (--tracking, --inference, --profile).
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The environment this script was started with, before importing wordnet changes it
# (GOMP_SPINCOUNT): the torch peer's process gets this one.
START_ENV = dict(os.environ)

from machine import (  # noqa: E402  (benchmarks/, beside this script)
    REPO,
    CpuMeter,
    blas_libraries,
    environment,
    memory_mark,
    print_blas,
    print_environment,
)
from peers import CHECK_UPDATES, NumpyNet, SixGemms, TorchPeer, TwoHalves, check_peers  # noqa: E402
from rows import Bench, TrainerTiming, cycle_batches, stepping  # noqa: E402
from sections import inference_section, profile_fast, tracking_section  # noqa: E402

from wordnet.data.dataset import load_dataset  # noqa: E402
from wordnet.models.fourgram import FourGramConfig, Model  # noqa: E402
from wordnet.training.trainer import batches  # noqa: E402

C_REFERENCE_RATE = 90.0          # updates/s of the C reference, SPEC section 8 (not measured here)


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def resolve_data_dir(arg: str | None) -> Path:
    """--data-dir, else $WORDNET_DATA_DIR, else data/, else the copy shipped with the
    package, written into a temporary folder (the benchmarks read files)."""
    candidates = [arg] if arg else [os.environ.get("WORDNET_DATA_DIR"), str(REPO / "data")]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    if arg:
        sys.exit(f"no data folder {arg}")
    from wordnet.data import embedded
    folder = Path(tempfile.mkdtemp(prefix="wordnet-bench-data-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in ("vocab.txt", "raw_sentences.txt", "model9-3000.bin"):
        (folder / name).write_bytes(embedded.read_bytes(name))
    return folder


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="the data folder (default: $WORDNET_DATA_DIR, else data/, "
                                       "else the copy shipped with the package)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="wall time of one timed repeat of one implementation (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="warm-up wall time per implementation (default 0.5)")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="pause before each measurement, so idle BLAS/OpenMP threads of the "
                         "previous one stop spinning (default 0.2)")
    ap.add_argument("--foreign-limit", type=float, default=0.15,
                    help="re-measure when other processes used more than this many cores "
                         "during a measurement (default 0.15)")
    ap.add_argument("--max-retries", type=int, default=8,
                    help="re-measurements allowed in the whole run (default 8)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                    help="before timing, and before a re-measurement, wait up to this many "
                         "seconds in all for other processes to leave the CPU (default 0)")
    ap.add_argument("--only", help="comma-separated keys of the rows to run (see the table)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch peers")
    ap.add_argument("--torch-sgd", choices=("default", "foreach", "fused"), default="default",
                    help="torch.optim.SGD implementation (default: torch's own choice)")
    ap.add_argument("--check-only", action="store_true", help="only check the peers, then exit")
    ap.add_argument("--no-timing", action="store_true",
                    help="skip the table (to run only --profile, --tracking, --inference)")
    ap.add_argument("--profile", action="store_true",
                    help="also time each compiled kernel of our fast backend's update")
    ap.add_argument("--tracking", action="store_true",
                    help="also time the quick and reference pipelines with and without "
                         "MLflow tracking")
    ap.add_argument("--inference", action="store_true",
                    help="also time predictions for 10,000 contexts (API, pyfunc, forward pass)")
    ap.add_argument("--tracking-repeats", type=int, default=2,
                    help="pairs of pipeline runs per recipe for --tracking (default 2)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return ap.parse_args(argv)


@dataclasses.dataclass
class Setup:
    """The data and the common starting point of every implementation."""
    data_dir: Path
    train: np.ndarray                  # (rows, D + 1) int32, 0-based
    x: np.ndarray                      # (M, N, D) int32: the minibatches, in file order
    t: np.ndarray                      # (M, N) int32
    cfg: FourGramConfig                        # the reference recipe's hyperparameters
    params: dict                       # c-reference initial weights, C layout
    V: int
    D: int


def load(args) -> Setup:
    data_dir = resolve_data_dir(args.data_dir)
    dataset = load_dataset(data_dir)
    cfg = FourGramConfig()
    V, D = len(dataset.vocab), dataset.train.shape[1] - 1
    x, t = batches(dataset.train, cfg.batch_size)
    params = Model.initialize(dataclasses.replace(cfg, backend="fast"), V, D).params()
    print(f"data {data_dir}: {len(dataset.train):,} training rows, {len(x)} minibatches of "
          f"N={cfg.batch_size}; float64, h1={cfg.embedding_size}, h2={cfg.hidden_size}, V={V}, "
          f"D={D}; lr {cfg.learning_rate}, momentum {cfg.momentum}; c-reference init")
    return Setup(data_dir, dataset.train, x, t, cfg, params, V, D)


def check_section(s: Setup, torch_peers: dict, workdir: Path) -> dict:
    print("\n== Check: the peers against our fast backend, same initial weights ==")
    cfg, n = s.cfg, CHECK_UPDATES

    def numpy_peer():
        net = NumpyNet(s.params, cfg.batch_size, cfg.learning_rate, cfg.momentum)
        x, xh, t = net.prepare(s.x[:n], s.t[:n])
        ces = [net.step(x[b], xh[b], t[b]) for b in range(n)]
        return net.params(), ces

    peers = {"numpy": numpy_peer}
    if "float64" in torch_peers:
        peers["torch float64"] = lambda: torch_peers["float64"].check(n, workdir / "check.npz")
    return check_peers(s.params, s.train, peers, cfg)


def start_torch_peers(s: Setup, args, workdir: Path) -> dict:
    """dtype -> TorchPeer, for the torch rows wanted; {} without torch."""
    only = set(args.only.split(",")) if args.only else None
    timing = not (args.no_timing or args.check_only)
    dtypes = [d for d, key in (("float64", "torch64"), ("float32", "torch32"))
              if d == "float64" or (timing and (only is None or key in only))]  # f64: the check
    if args.no_torch:
        return {}
    if importlib.util.find_spec("torch") is None:
        print("PyTorch rows skipped: torch is not installed (pip install torch into this "
              "environment to measure them)")
        return {}
    data = workdir / "torch-peer.npz"
    np.savez(data, x=s.x, t=s.t, **s.params)
    peers = {d: TorchPeer(data, d, args.torch_sgd, START_ENV) for d in dtypes}
    some = next(iter(peers.values()))
    print(f"PyTorch {some.version}, {some.threads} threads, in child processes "
          f"(torch_peer.py) started with this script's own environment")
    return peers


def build_benches(s: Setup, args, torch_peers: dict) -> list[Bench]:
    """The rows of the table, in order."""
    cfg, params, M = s.cfg, s.params, len(s.x)
    N, h1, h2 = cfg.batch_size, cfg.embedding_size, cfg.hidden_size
    only = set(args.only.split(",")) if args.only else None
    def wanted(key):
        return only is None or key in only

    benches: list[Bench] = []

    def add(key, label, measure, group):
        if wanted(key):
            benches.append(Bench(key, label, measure, group))

    # Our backends with their defaults, and confined to one core: Model(threads=1)
    # and BLAS limited to one thread.
    ours = [("fast", "fast", None), ("fast-1t", "fast", 1), ("exact", "exact", None),
            ("exact-1t", "exact", 1)]
    for key, backend, threads in ours:
        if not wanted(key):
            continue
        if threads is None:
            model = Model(params, backend)
            how = f"defaults: {model.threads} threads"
        else:
            model, how = Model(params, backend, threads=1), "threads=1, BLAS 1 thread"
        timing = TrainerTiming(model, dataclasses.replace(cfg, backend=backend), s.train, threads)
        add(key, f"ours: {backend} backend, Trainer ({how})", timing, "ours")

    if wanted("fast-f32"):
        cfg32 = dataclasses.replace(cfg, backend="fast", dtype="float32")
        add("fast-f32", "ours: fast backend, float32, Trainer (defaults)",
            TrainerTiming(Model.initialize(cfg32, s.V, s.D), cfg32, s.train, None), "ours")

    # The model's options (README, "The model"): what a tanh hidden layer and a weight
    # decay cost the fast backend, against its defaults in the same run.
    for key, options, what in (("fast-tanh", {"activation": "tanh"}, "tanh hidden layer"),
                               ("fast-decay", {"weight_decay": 1e-4}, "weight decay 1e-4")):
        if wanted(key):
            cfg_o = dataclasses.replace(cfg, backend="fast", **options)
            model = Model(params, "fast", activation=cfg_o.activation)
            add(key, f"ours: fast backend, {what}, Trainer (defaults)",
                TrainerTiming(model, cfg_o, s.train, None), "ours")

    if wanted("numpy") or wanted("numpy-2t"):
        net = NumpyNet(params, N, cfg.learning_rate, cfg.momentum)
        xs, xh, ts = net.prepare(s.x, s.t)
        numpy_step = cycle_batches(lambda b: net.step(xs[b], xh[b], ts[b]), M)
        add("numpy", "numpy peer (BLAS 1 thread)", stepping(numpy_step, 1), "peer")
        add("numpy-2t", "numpy peer (BLAS 2 threads)", stepping(numpy_step, 2), "peer")

    for dtype, key in (("float64", "torch64"), ("float32", "torch32")):
        if dtype in torch_peers:
            peer = torch_peers[dtype]
            add(key, f"PyTorch {peer.version} CPU {dtype} ({peer.threads} threads)",
                peer.measure, "peer")

    rng = np.random.default_rng(0)
    whole = SixGemms(N, s.V, h1, h2, s.D, rng)
    halves = [SixGemms(N // 2, s.V, h1, h2, s.D, rng), SixGemms(N - N // 2, s.V, h1, h2, s.D, rng)]
    add("gemm-2t", "six GEMMs, numpy, BLAS's own 2 threads", stepping(whole.step, 2), "bound")
    add("gemm-1t", "six GEMMs, numpy, BLAS 1 thread", stepping(whole.step, 1), "bound")
    add("gemm-halves", "six GEMMs, 2 halves at once (2-core bound)",
        TwoHalves(halves, lockstep=False).measure, "bound")
    add("gemm-halves-sync", "six GEMMs, 2 halves, barrier every step",
        TwoHalves(halves, lockstep=True).measure, "bound")
    return benches


def time_benches(benches: list[Bench], args, memory: dict) -> None:
    """Warm every row up, then time them round-robin, re-measuring a repeat during
    which other processes took CPU (within the --max-retries budget)."""
    print(f"\n== Timing: {len(benches)} rows x {args.repeats} repeats x {args.seconds:g} s, "
          f"round-robin ==")
    for bench in benches:
        bench.measure(args.warmup)
        memory_mark(memory, f"warm {bench.key}")
    meter = CpuMeter()
    retries_left, wait_left = args.max_retries, args.wait_idle
    wait_left -= meter.wait_idle(args.foreign_limit, wait_left)
    for r in range(args.repeats):
        for bench in benches:
            while True:
                time.sleep(args.settle)
                before = meter.sample()
                rate = bench.measure(args.seconds)
                foreign = meter.foreign(before, meter.sample())
                if not foreign > args.foreign_limit or retries_left <= 0:
                    break
                retries_left -= 1
                bench.retries += 1
                print(f"  {bench.key}: other processes used {foreign:.2f} cores: measured again")
                wait_left -= meter.wait_idle(args.foreign_limit, wait_left)
            bench.rates.append(rate)
            bench.foreign.append(foreign)
        print(f"  repeat {r + 1}/{args.repeats} done")


def print_table(benches: list[Bench], foreign_limit: float) -> None:
    fast = next((b.best for b in benches if b.key == "fast"), math.nan)
    width = max(len(b.label) for b in benches) + 2
    print(f"\n{'key':<18}{'implementation':<{width}}{'updates/s':>10}{'median':>8}{'spread':>8}"
          f"{'/ fast':>8}{'others':>8}")
    print("-" * (60 + width))
    group = None
    for b in benches:
        if group is not None and b.group != group:
            print()
        group = b.group
        spread = (max(b.rates) - min(b.rates)) / b.median
        print(f"{b.key:<18}{b.label:<{width}}{b.best:10.0f}{b.median:8.0f}{spread:8.0%}"
              f"{b.best / fast:8.2f}{max(b.foreign):8.2f}")
    print("updates/s: the fastest repeat (GEMM rows: steps of the six products per second); "
          "median: the median repeat;\nspread: (max - min) / median; / fast: updates/s over "
          "fast's; others: the most CPU, in cores, that other\nprocesses used during a kept "
          "repeat "
          f"({sum(b.retries for b in benches)} repeat(s) were measured again because others "
          f"used more than {foreign_limit} cores)")


def print_ratios(benches: list[Bench]) -> dict:
    print("\n== Target ratios (fastest repeats of this run) ==")
    rate = {b.key: b.best for b in benches}
    ratios = {}

    def ratio(name, num, den, note=""):
        if num in rate and den in rate:
            ratios[name] = rate[num] / rate[den]
            print(f"  {name:<32} {ratios[name]:6.2f}{note}")
        else:
            print(f"  {name:<32} skipped: {den if num in rate else num} not measured")

    ratio("fast / numpy (1 thread)", "fast", "numpy")
    ratio("fast / torch float64", "fast", "torch64")
    ratio("fast / two-core bound", "fast", "gemm-halves")
    ratio("fast float32 / fast float64", "fast-f32", "fast")
    ratio("fast tanh / fast sigmoid", "fast-tanh", "fast")
    ratio("fast decay 1e-4 / fast", "fast-decay", "fast")
    for key in ("exact", "exact-1t"):
        if key in rate:
            name = f"{key} / C reference"
            ratios[name] = rate[key] / C_REFERENCE_RATE
            print(f"  {name:<32} {ratios[name]:6.2f}  (= {rate[key]:.0f} / {C_REFERENCE_RATE:.0f})")
    if "exact" in rate or "exact-1t" in rate:
        print(f"  the C reference's {C_REFERENCE_RATE:.0f} updates/s is SPEC section 8's figure "
              f"(single-threaded, gcc -O3), not measured in this run")
    return ratios


def print_memory(memory: dict, torch_peaks: dict) -> None:
    print(f"\npeak memory (ru_maxrss): {memory['end']['peak']:.0f} MiB for this process; "
          f"{memory['data loaded']['peak']:.0f} MiB already while loading the data")
    print("  resident (MiB): " + ", ".join(f"{stage} {m['rss']:.0f}"
                                          for stage, m in memory.items()))
    if torch_peaks:
        print("  torch peer processes, peak: " + ", ".join(
            f"{dtype} {mib:.0f} MiB" for dtype, mib in torch_peaks.items()))
    memory["torch peer peak"] = torch_peaks


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    env = environment(START_ENV)
    print("== WordNet training throughput: minibatch updates per second ==")
    print_environment(env)
    memory: dict[str, dict[str, float]] = {}
    memory_mark(memory, "start")
    s = load(args)
    memory_mark(memory, "data loaded")

    with tempfile.TemporaryDirectory(prefix="wordnet-bench-") as tmp:
        torch_peers = start_torch_peers(s, args, Path(tmp))
        try:
            return measure_and_report(s, args, env, memory, torch_peers, Path(tmp), t_start)
        finally:
            for peer in torch_peers.values():
                peer.close()


def measure_and_report(s: Setup, args, env: dict, memory: dict, torch_peers: dict,
                       workdir: Path, t_start: float) -> int:
    if torch_peers:
        some = next(iter(torch_peers.values()))
        env["torch"], env["torch_threads"] = some.version, some.threads
    check = check_section(s, torch_peers, workdir)
    memory_mark(memory, "peers checked")
    env["blas"] = blas_libraries()        # now that our backends and the peers have run
    print()
    print_blas(env["blas"])
    if not all(r["ok"] for r in check.values()):
        print("a peer disagrees with our fast backend: its figures would not be comparable")
        return 1
    if args.check_only:
        return 0

    benches, ratios = [], {}
    if not args.no_timing:
        benches = build_benches(s, args, torch_peers)
        time_benches(benches, args, memory)
        memory_mark(memory, "end")
        print_table(benches, args.foreign_limit)
        ratios = print_ratios(benches)
        print_memory(memory, {d: p.peak_rss_mib() for d, p in torch_peers.items()})
    env["loadavg_end"] = list(os.getloadavg())

    profile = (profile_fast(s, args.seconds, args.foreign_limit, args.wait_idle)
               if args.profile else None)
    tracking = (tracking_section(s.data_dir, args.tracking_repeats, args.foreign_limit,
                                 args.wait_idle) if args.tracking else None)
    inference = inference_section(s, args.seconds) if args.inference else None
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")

    if args.json:
        fast = next((b.best for b in benches if b.key == "fast"), math.nan)
        out = {
            "environment": env,
            "config": {"dtype": "float64", "N": s.cfg.batch_size, "h1": s.cfg.embedding_size,
                       "h2": s.cfg.hidden_size, "V": s.V, "D": s.D,
                       "learning_rate": s.cfg.learning_rate, "momentum": s.cfg.momentum,
                       "data_dir": str(s.data_dir), "seconds": args.seconds,
                       "repeats": args.repeats, "warmup": args.warmup,
                       "torch_sgd": args.torch_sgd},
            "check": check,
            "results": [{"key": b.key, "label": b.label, "group": b.group,
                         "median": b.median, "best": b.best, "rates": b.rates,
                         "foreign_cpu": b.foreign, "retries": b.retries,
                         "ratio_to_fast": b.best / fast} for b in benches],
            "ratios": ratios,
            "c_reference_rate_from_spec": C_REFERENCE_RATE,
            "memory_mib": memory,
            "profile_us": profile,
            "tracking": tracking,
            "inference_contexts_per_second": inference,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
