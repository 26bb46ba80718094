#!/usr/bin/env python
"""Larger vocabularies: training updates per second of the 4-gram model and of skip-gram
with the full softmax at V = 2,000, 10,000 and 50,000 words, against PyTorch.

The softmax over V words is where the time goes at these sizes (W3 is V x 200, skip-gram's
W2 V x 50), so the data's words matter only through their indices: each V gets a
synthetic corpus, sentences of Zipf-distributed words (seeded), as a user's text would
have them, made into 4-grams and (centre, context) pairs (k = 2) by the package's own
functions.  The recipes' other sizes: N = 100, h1 = 50, h2 = 200; momentum 0.9,
learning rate 0.1; float64.

For each model and V, one process measures:

  * ours through the public API, fast backend, threads as by default: the 4-gram
    model by ``Trainer(model, config).run`` (its own updates/s), skip-gram by the
    step SampledTrainer runs, ``SkipGram.fused_step`` (pyx/softmax_step.pyx);
  * PyTorch (nn.Embedding, nn.Linear, cross-entropy, SGD with momentum) in a child
    process of its own (torch_peer.py; 2 threads), float64.

  * the three products of the output layer that any implementation of the step makes
    (z = W y, the input-side W^T dz and the gradient dz y^T, with W3 or skip-gram's W2),
    float64, through numpy's BLAS on every CPU, and nothing else: a bound on the
    updates/s, against which ours and torch's are also given as a share.

Before timing, the peer is checked: from the same weights, after 10 updates of the
4-gram model (3 of skip-gram) every parameter agrees with ours within 1e-10.  The
repeats go round-robin; the table gives each one's best repeat, and ours ÷ torch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_vocab.py

PyTorch is not a dependency: `pip install torch` into the environment first.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402  (beside this script)
from peers import TorchPeer, check_peers  # noqa: E402
from rates import run_for  # noqa: E402
from rows import TrainerTiming  # noqa: E402

from wordnet.data.corpus import pairs  # noqa: E402
from wordnet.data.dataset import BREAK  # noqa: E402
from wordnet.models.base import Momentum  # noqa: E402
from wordnet.models.fourgram import FourGramConfig, Model  # noqa: E402
from wordnet.models.skipgram import SkipGram, SkipGramConfig  # noqa: E402
from wordnet.training.trainer import batches  # noqa: E402

START_ENV = dict(os.environ)        # the torch peers get this, not what importing wordnet set
SIZES = (2_000, 10_000, 50_000)
TOKENS = 400_000                    # of each synthetic corpus
SKIPGRAM_CHECK = 3                  # updates compared before timing skip-gram


def corpus(V: int, seed: int = 0) -> np.ndarray:
    """A token stream of TOKENS Zipf(1.1)-distributed words over V, sentences of 5-30
    words each ended by BREAK."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, V + 1, dtype=np.float64)
    p = ranks ** -1.1
    words = rng.choice(V, size=TOKENS, p=p / p.sum()).astype(np.int32)
    ends = np.cumsum(rng.integers(5, 31, size=TOKENS // 5))
    words[ends[ends < TOKENS]] = BREAK
    return words


def fourgram_rows(tokens: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(tokens, 4)
    return np.ascontiguousarray(windows[(windows != BREAK).all(axis=1)], dtype=np.int32)


def fourgram(V: int, tokens, args, workdir: Path) -> dict:
    cfg = FourGramConfig(backend="fast")
    rows = fourgram_rows(tokens)
    model = Model.initialize(cfg, V)
    params = {k: v.copy() for k, v in model.params().items()}
    x, t = batches(rows, cfg.batch_size)
    data = workdir / f"fourgram-{V}.npz"
    np.savez(data, x=x, t=t, **params)
    # Our CE is the C program's, -log(y + e^-30): for a word of probability about 1/V, e^-30 V
    # from torch's -log(y) (4.7e-9 at V = 50,000); the parameters agree as closely as ever
    peers.CE_TOLERANCE = max(peers.CE_TOLERANCE, 10 * V * math.exp(-30))
    torch = TorchPeer(data, "float64", "default", START_ENV)
    try:
        report = check_peers(params, rows, {"torch": lambda: torch.check(
            10, workdir / "check.npz")}, cfg)
        if not report["torch"]["ok"]:
            raise SystemExit(f"V={V}: the torch peer does not train the same model")
        ours = TrainerTiming(Model(params, "fast"), cfg, rows, None)
        return timed({"ours": ours, "torch": torch.measure,
                      "products": products(V, cfg.hidden_size, cfg.batch_size)}, args)
    finally:
        torch.close()


def skipgram(V: int, tokens, args, workdir: Path) -> dict:
    cfg = SkipGramConfig(backend="fast", window=2, negatives=0)
    examples = pairs(tokens, cfg.window)
    N = cfg.batch_size
    M = len(examples) // N
    params = {k: v.copy() for k, v in SkipGram.initialize(cfg, V).params().items()}
    data = workdir / f"skipgram-{V}.npz"
    x, t = examples[:M * N, 0].reshape(M, N), examples[:M * N, 1].reshape(M, N)
    np.savez(data, x=x, t=t, **params)
    torch = TorchPeer(data, "float64", "default", START_ENV, model="skipgram")
    try:
        ours, step = stepper(params, cfg, examples, M)
        for _ in range(SKIPGRAM_CHECK):
            step()
        theirs, _ = torch.check(SKIPGRAM_CHECK, workdir / "check.npz")
        gap = max(float(np.abs(theirs[k] - ours.params()[k]).max()) for k in ("W1", "W2"))
        print(f"  skip-gram V={V:,}: after {SKIPGRAM_CHECK} updates, max |Δθ| = {gap:.2e}  "
              f"{'ok' if gap < 1e-10 else 'FAILED'}")
        if gap >= 1e-10:
            raise SystemExit(f"V={V}: the torch skip-gram does not train the same model")
        ours, step = stepper(params, cfg, examples, M)
        with ours.single_threaded_blas():
            return timed({"ours": lambda s: run_for(step, s), "torch": torch.measure,
                          "products": products(V, cfg.embedding_size, N)}, args)
    finally:
        torch.close()


def stepper(params, cfg, examples, M):
    """Our skip-gram from ``params``, and a step through the public API on minibatch
    0, 1, ... in turn, the one SampledTrainer runs: SkipGram.fused_step (the full
    softmax's gradients and Momentum's step in one kernel)."""
    model = SkipGram({k: v.copy() for k, v in params.items()}, "fast")
    optimizer = Momentum(model, cfg.learning_rate, cfg.momentum, cfg.batch_size)
    N, b = cfg.batch_size, 0

    def step():
        nonlocal b
        model.fused_step(examples[b * N:(b + 1) * N], optimizer, cfg)
        b = b + 1 if b + 1 < M else 0
    return model, step


def products(V: int, h: int, N: int):
    """A measure (seconds -> calls/s) of the output layer's three products alone at
    (V x h) weights and N examples: z = W y, W^T dz, dz y^T."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    W, y, dz = rng.random((V, h)), rng.random((h, N)), rng.random((V, N))
    z, dy, dW = np.empty((V, N)), np.empty((h, N)), np.empty((V, h))

    def step():
        np.matmul(W, y, out=z)
        np.matmul(W.T, dz, out=dy)
        np.matmul(dz, y.T, out=dW)

    def measure(seconds: float) -> float:
        with threadpool_limits(os.cpu_count()):
            return run_for(step, seconds)
    return measure


def timed(measures: dict, args) -> dict:
    best = dict.fromkeys(measures, 0.0)
    for name, measure in measures.items():               # warm-up
        measure(args.seconds / 4)
    for _ in range(args.repeats):
        for name, measure in measures.items():
            best[name] = max(best[name], measure(args.seconds))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="comma-separated vocabulary sizes (default 2000,10000,50000)")
    ap.add_argument("--seconds", type=float, default=2.0, help="per repeat (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="round-robin repeats (default 3)")
    ap.add_argument("--only", default="fourgram,skipgram", help="fourgram, skipgram or both")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        print("PyTorch is not installed: pip install torch into this environment",
              file=sys.stderr)
        return 2
    models = {"fourgram": fourgram, "skipgram": skipgram}
    chosen = [m for m in args.only.split(",") if m]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-vocab-") as scratch:
        for V in (int(v) for v in args.sizes.split(",")):
            tokens = corpus(V)
            for name in chosen:
                best = models[name](V, tokens, args, Path(scratch))
                results.append((name, V, best))
                ratio = best["ours"] / best["torch"]
                print(f"  {name:<9} V={V:>6,}: ours {best['ours']:8,.0f} upd/s, torch "
                      f"{best['torch']:8,.0f} upd/s, ours ÷ torch {ratio:.2f}; the three "
                      f"products alone {best['products']:,.0f}/s")
    print("\n| model | V | ours upd/s | torch upd/s | ours ÷ torch | three products/s "
          "| ours, torch, 1.5 x torch as a share of it |\n|---|---|---|---|---|---|---|")
    for name, V, best in results:
        share = [best[k] / best["products"] for k in ("ours", "torch")]
        print(f"| {name} | {V:,} | {best['ours']:,.0f} | {best['torch']:,.0f} | "
              f"{best['ours'] / best['torch']:.2f} | {best['products']:,.0f} | "
              f"{share[0]:.2f}, {share[1]:.2f}, {1.5 * share[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
