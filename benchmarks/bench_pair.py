#!/usr/bin/env python
"""A/B of the 4-gram fused training step on one core, paired chunk by chunk.

A kernel change worth a few per cent cannot be told from noise by timing two
runs one after the other on a shared machine: in an A/A test (the same build
twice) that gave run medians 40 µs apart and single pairs 150 µs apart, of a
1,550 µs update.  This script starts two worker processes, A and B, each with
the training data and a fresh model, and has them run chunks of 32 minibatches
of ``train_minibatches`` (the trainer's fused loop, fast backend, one thread) in
turn, ABBA..., timing each chunk by the thread's CPU time (a time slice another
process takes is not counted).  It prints each side's median µs per update and
the median of the paired differences with a bootstrap 90 % interval; in the
A/A test that interval was ±13 µs over 60 pairs.

    # B is this checkout's build; A a copy of the package as built before a change
    cp -r wordnet /tmp/before/            # before editing pyx/, then rebuild
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_pair.py --base /tmp/before

    # one build: the six GEMMs alone (the loop's BLAS, scipy's) against the step
    python benchmarks/bench_pair.py --a gemm --b fused

``--base`` is put first on A's PYTHONPATH (so that ``import wordnet`` finds the
copy); without it both sides run this checkout's build.  ``--dtype float32``,
``--weight-decay``, ``--tanh`` and ``--rounds`` change the step and the count;
``--b-dtype`` gives B another dtype (``--b-dtype float32``: float32 against float64).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHUNK = 32                                    # minibatches per timed chunk


def worker(args) -> None:
    """Serve 'fused' and 'gemm' lines on stdin, one timed chunk each: µs per update."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(HERE))
    from bench import resolve_data_dir  # noqa: E402  (beside this script)

    from wordnet._loop import train_minibatches
    from wordnet._products import gemm, prepare_blas
    from wordnet.data.dataset import load_dataset
    from wordnet.models.fourgram import FourGramConfig, Model
    from wordnet.training.trainer import Trainer, batches, target_order

    dataset = load_dataset(resolve_data_dir(args.data_dir))
    cfg = FourGramConfig(backend="fast", dtype=args.dtype, weight_decay=args.weight_decay,
                         activation="tanh" if args.tanh else "sigmoid")
    x, t = batches(dataset.train, cfg.batch_size)
    order = target_order(t)
    model = Model.initialize(cfg, len(dataset.vocab), threads=1)
    trainer = Trainer(model, cfg)
    trace = np.empty(CHUNK)
    prepare_blas()
    rng = np.random.default_rng(0)
    N, V, h1, h2, D = cfg.batch_size, len(dataset.vocab), cfg.embedding_size, cfg.hidden_size, 3

    def r(*shape):
        return rng.standard_normal(shape).astype(model.dtype)
    W2, W3, y1, y2, dz3, dz2 = r(h2, D * h1), r(V, h2), r(D * h1, N), r(h2, N), r(V, N), r(h2, N)
    z2, z3, dy2, dy1, dW3, dW2 = r(h2, N), r(V, N), r(h2, N), r(D * h1, N), r(V, h2), r(h2, D * h1)

    def six_gemms():
        for A, B, C, ta, tb in ((W2, y1, z2, False, False), (W3, y2, z3, False, False),
                                (dz3, y2, dW3, False, True), (W3, dz3, dy2, True, False),
                                (dz2, y1, dW2, False, True), (W2, dz2, dy1, True, False)):
            gemm(A, B, C, ta, tb, False, 1)

    b = 0
    with threadpool_limits(1, user_api="blas"):
        print("ready", flush=True)
        for line in sys.stdin:
            what = line.strip()
            t0 = time.thread_time()
            if what == "fused":
                b = 0 if b + CHUNK > len(x) else b
                train_minibatches(model, trainer.velocity, trainer.grads, trainer.buffers,
                                  trainer.part, x, t, order, b, b + CHUNK, 0.0, trace,
                                  cfg.learning_rate, cfg.momentum, trainer.optimizer.inv_n,
                                  False, 1, args.tanh, args.weight_decay)
                b += CHUNK
            elif what == "gemm":
                for _ in range(CHUNK):
                    six_gemms()
            else:
                break
            print(f"{(time.thread_time() - t0) / CHUNK * 1e6:.3f}", flush=True)


def start(args, base: str | None, dtype: str):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if base:
        env["PYTHONPATH"] = os.pathsep.join([base] + ([env["PYTHONPATH"]]
                                                      if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, __file__, "--worker", "--dtype", dtype,
           "--weight-decay", str(args.weight_decay)] + (["--tanh"] if args.tanh else [])
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if p.stdout.readline().strip() != "ready":
        sys.exit("a worker did not start")
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--base", help="a copy of the wordnet package (its parent folder) for A")
    ap.add_argument("--a", default="fused", choices=("fused", "gemm"), help="what A runs")
    ap.add_argument("--b", default="fused", choices=("fused", "gemm"), help="what B runs")
    ap.add_argument("--rounds", type=int, default=100, help="timed pairs (default 100)")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--b-dtype", choices=("float64", "float32"), help="B's, if not --dtype")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--tanh", action="store_true")
    ap.add_argument("--data-dir")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    b_dtype = args.b_dtype or args.dtype
    A, B = start(args, args.base, args.dtype), start(args, None, b_dtype)

    def run(p, what):
        p.stdin.write(what + "\n")
        p.stdin.flush()
        return float(p.stdout.readline())
    for _ in range(4):                                # warm up
        run(A, args.a), run(B, args.b)
    a, b = [], []
    for i in range(args.rounds):
        if i % 2:
            b.append(run(B, args.b)), a.append(run(A, args.a))
        else:
            a.append(run(A, args.a)), b.append(run(B, args.b))
    for p in (A, B):
        p.stdin.write("quit\n")
        p.stdin.flush()
        p.wait()
    diff = [y - x for x, y in zip(a, b)]
    boot = sorted(statistics.median(random.choices(diff, k=len(diff))) for _ in range(2000))
    print(f"A ({args.base or 'this build'}, {args.a}, {args.dtype}): {statistics.median(a):.1f} "
          f"µs per update; B (this build, {args.b}, {b_dtype}): {statistics.median(b):.1f}  "
          f"[one core, {args.rounds} pairs of {CHUNK} minibatches]")
    print(f"B - A: {statistics.median(diff):+.1f} µs (90 % interval {boot[100]:+.1f} .. "
          f"{boot[1899]:+.1f}); B / A = {statistics.median(b) / statistics.median(a):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
