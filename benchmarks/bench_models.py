#!/usr/bin/env python
"""Training steps per second of the notes' other models, against plain numpy.

For each of the window scorer (recipe window.toml's sizes: k = 2, h1 = 50, h2 = 100,
tanh), skip-gram with the full softmax and skip-gram with K = 5 negative samples
(h1 = 50, V = 250), all with N = 100 on the real training examples, one process
measures:

  * ours, through the public API, as SampledTrainer runs a minibatch: the model's
    ``fused_step`` where it has one (skip-gram's full softmax on the fast backend),
    else ``SampledTrainer.batch_loss`` (which draws the random words) then
    ``Momentum.step``; fast backend in float64 and float32, and the exact backend;
  * the same step in numpy, written for speed (examples as rows, buffers reused
    where numpy allows, ``np.add.at`` for the scatters into the embeddings), with
    BLAS's own threads and with one.

Before timing, each numpy step is checked against our fast backend: from the same
weights and the same random words, the parameters after three updates agree
within 1e-10.  The repeats go round-robin over the implementations; the table
gives the fastest repeat of each, and the ratio of our fast float64 backend to
the faster numpy.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_models.py
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from rates import run_for  # noqa: E402  (benchmarks/rates.py, beside this script)

from wordnet.data.corpus import load_corpus  # noqa: E402
from wordnet.data.dataset import Vocabulary  # noqa: E402
from wordnet.models.base import Momentum  # noqa: E402
from wordnet.models.skipgram import (
    UNIGRAM_POWER,  # noqa: E402
    SkipGram,  # noqa: E402
)
from wordnet.models.window import WindowScorer, corrupt  # noqa: E402
from wordnet.runs.recipes import load_recipe  # noqa: E402
from wordnet.training.sampled import SampledTrainer, examples  # noqa: E402


class NumpyStep:
    """Momentum SGD on flat parameter, gradient and velocity arrays (the named arrays
    are views), as wordnet.models.base.Momentum computes it: vel = m·vel + g/N; θ -= lr·vel."""

    def __init__(self, shapes: dict, lr: float, momentum: float, N: int):
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.theta, self.grad, self.vel = np.empty(size), np.empty(size), np.zeros(size)
        self.p, self.g, offset = {}, {}, 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            self.p[name] = self.theta[offset:offset + n].reshape(shape)
            self.g[name] = self.grad[offset:offset + n].reshape(shape)
            offset += n
        self.lr, self.momentum, self.inv_n = lr, momentum, 1.0 / N

    def update(self):
        self.vel *= self.momentum
        self.vel += self.grad * self.inv_n
        self.theta -= self.lr * self.vel


class NumpyWindow(NumpyStep):
    """The window scorer's hinge step; E = W1ᵀ (V x h1), so a window's embeddings are
    whole rows."""

    def __init__(self, params, lr, momentum, N):
        h1, V = params["W1"].shape
        super().__init__({"E": (V, h1), "W2": params["W2"].shape, "b2": params["b2"].shape,
                          "W3": params["W3"].shape, "b3": (1,)}, lr, momentum, N)
        self.p["E"][...] = params["W1"].T
        for name in ("W2", "b2", "W3", "b3"):
            self.p[name][...] = params[name]
        self.h1 = h1

    def step(self, x, corrupted):
        p, g, N = self.p, self.g, len(x)
        both = np.concatenate([x, corrupted])
        y1 = p["E"][both].reshape(2 * N, -1)                   # 2N x D·h1
        y2 = np.tanh(y1 @ p["W2"].T + p["b2"])
        s = y2 @ p["W3"][0] + p["b3"][0]
        active = (1.0 - s[:N] + s[N:]) > 0
        ds = np.concatenate([-1.0 * active, 1.0 * active])
        g["W3"][0] = ds @ y2
        g["b3"][0] = ds.sum()
        dz2 = np.outer(ds, p["W3"][0]) * (1.0 - y2 * y2)
        g["W2"][...] = dz2.T @ y1
        g["b2"][...] = dz2.sum(axis=0)
        g["E"][...] = 0.0
        np.add.at(g["E"], both.ravel(), (dz2 @ p["W2"]).reshape(-1, self.h1))
        self.update()

    def W1(self):
        return self.p["E"].T


class NumpySkipGram(NumpyStep):
    """Skip-gram's step, full softmax or negative sampling; E = W1ᵀ (V x d)."""

    def __init__(self, params, lr, momentum, N):
        d, V = params["W1"].shape
        super().__init__({"E": (V, d), "W2": (V, d)}, lr, momentum, N)
        self.p["E"][...] = params["W1"].T
        self.p["W2"][...] = params["W2"]
        self.d = d

    def step(self, pairs, samples=None):
        p, g = self.p, self.g
        c, o = pairs[:, 0], pairs[:, 1]
        v = p["E"][c]                                          # N x d
        g["E"][...] = 0.0
        if samples is None:
            z = v @ p["W2"].T                                  # N x V
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)                  # dz = softmax - onehot(o)
            z[np.arange(len(c)), o] -= 1.0
            g["W2"][...] = z.T @ v
            np.add.at(g["E"], c, z @ p["W2"])
        else:
            words = np.column_stack([o, samples])              # N x (K+1)
            U = p["W2"][words]                                 # N x (K+1) x d
            u = np.einsum("nkd,nd->nk", U, v)
            gu = 1.0 / (1.0 + np.exp(-u))                      # σ(u) - label
            gu[:, 0] -= 1.0
            g["W2"][...] = 0.0
            np.add.at(g["W2"], words.ravel(), (gu[:, :, None] * v[:, None, :]).reshape(-1, self.d))
            np.add.at(g["E"], c, np.einsum("nk,nkd->nd", gu, U))
        self.update()

    def W1(self):
        return self.p["E"].T


def ours(config, corpus, backend, dtype, params):
    cls = WindowScorer if config.model == "window" else SkipGram
    extra = {"activation": config.activation} if cls is WindowScorer else {}
    model = cls(params, backend, dtype=dtype, **extra)
    cfg = dataclasses.replace(config, backend=backend, dtype=dtype)
    trainer = SampledTrainer(model, cfg, corpus)
    return model, trainer


def check(config, corpus, rows, params):
    """Our fast step and the numpy step, from the same weights and random words, agree."""
    model, trainer = ours(config, corpus, "fast", "float64", params)
    peer_cls = NumpyWindow if config.model == "window" else NumpySkipGram
    peer = peer_cls(params, config.learning_rate, config.momentum, config.batch_size)
    optimizer = Momentum(model, config.learning_rate, config.momentum, config.batch_size)
    rng, N = np.random.default_rng(1), config.batch_size
    for b in range(3):
        batch = rows[b * N:(b + 1) * N]
        if config.model == "window":
            c = corrupt(batch, rng.integers(0, model.vocab_size, N).astype(np.int32))
            model.gradients(batch, c, trainer.grads)
            peer.step(batch, c)
        else:
            s = (rng.integers(0, model.vocab_size, (N, config.negatives)).astype(np.int32)
                 if config.negatives else None)
            peer.step(batch, s)
            if s is None and model.fused_step(batch, optimizer, trainer.config) is not None:
                continue                    # the full softmax's step, fused: done
            model.gradients(batch, trainer.grads, s)
        optimizer.step(trainer.grads)
    gap = np.abs(peer.W1() - model.W1).max()
    assert gap < 1e-10, f"{config.model}: the numpy step differs from ours by {gap}"


def measure(name, corpus, seconds, repeats):
    config = load_recipe(name).config
    cls = WindowScorer if config.model == "window" else SkipGram
    rows = examples(cls, corpus, "train", config)
    N = config.batch_size
    M = len(rows) // N
    params = {k: v.copy() for k, v in cls.initialize(config, 250).params().items()}
    check(config, corpus, rows, params)
    steps = {}
    for backend, dtype in (("fast", "float64"), ("fast", "float32"), ("exact", "float64")):
        model, trainer = ours(config, corpus, backend, dtype, params)
        counter = iter(range(10**12))

        def step(model=model, trainer=trainer, counter=counter):
            b = next(counter) % M
            batch = rows[b * N:(b + 1) * N]
            if model.fused_step(batch, trainer.optimizer, trainer.config) is None:
                trainer.batch_loss(batch)
                trainer.optimizer.step(trainer.grads)
        steps[f"ours {backend} {dtype}"] = (step, model.single_threaded_blas)
    peer_cls = NumpyWindow if config.model == "window" else NumpySkipGram
    V = 250
    p_unigram = corpus.unigram(UNIGRAM_POWER) if config.model == "skipgram" else None
    for threads in (None, 1):
        peer = peer_cls(params, config.learning_rate, config.momentum, N)
        rng, counter = np.random.default_rng(0), iter(range(10**12))

        def step(peer=peer, rng=rng, counter=counter):
            b = next(counter) % M
            batch = rows[b * N:(b + 1) * N]
            if config.model == "window":
                peer.step(batch, corrupt(batch, rng.choice(V, size=N).astype(np.int32)))
            elif config.negatives:
                peer.step(batch, rng.choice(V, size=(N, config.negatives),
                                            p=p_unigram).astype(np.int32))
            else:
                peer.step(batch)
        label = "numpy, BLAS threads" if threads is None else "numpy, 1 BLAS thread"
        limit = (lambda: threadpool_limits(1, user_api="blas")) if threads == 1 else None
        steps[label] = (step, limit)
    best = {label: 0.0 for label in steps}
    for _ in range(repeats):
        for label, (step, context) in steps.items():
            if context is None:
                rate = run_for(step, seconds)
            else:
                with context():
                    step()
                    rate = run_for(step, seconds)
            best[label] = max(best[label], rate)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="window,skipgram,skipgram-neg")
    args = parser.parse_args()
    corpus = load_corpus(Vocabulary.embedded(), None)
    print("| model | implementation | steps/s (best of %d) | ours fast ÷ it |" % args.repeats)
    print("|---|---|---|---|")
    for name in args.only.split(","):
        best = measure(name, corpus, args.seconds, args.repeats)
        ours_fast = best["ours fast float64"]
        for label, rate in best.items():
            print(f"| {name} | {label} | {rate:,.0f} | {ours_fast / rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
