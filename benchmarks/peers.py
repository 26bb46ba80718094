"""bench.py's yardsticks: the same network and update in plain numpy and in PyTorch
(a process of its own), the bare six GEMMs of a step, and the check that the peers
compute what our fast backend computes."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from machine import HELPER_PIDS, blas_threads
from rates import run_for

from wordnet.models.fourgram import PARAMS, Model
from wordnet.training.trainer import Trainer

HERE = Path(__file__).resolve().parent
CHECK_UPDATES = 10               # updates compared between the peers and our fast backend
CHECK_TOLERANCE = 1e-10          # max |difference| of any parameter after them
CE_TOLERANCE = 1e-9              # torch's CE has no "+ exp(-30)": about 1e-11 apart
CE_EPS = math.exp(-30.0)         # the C reference's log(y3 + exp(-30))


class NumpyNet:
    """The same network and momentum update in plain numpy, written for speed.

    Examples are rows (N x units), so every per-example vector is contiguous:
    the embedding gather is a copy of whole rows of E = W1ᵀ (V x h1), and the
    (N, D, h1) gather result *is* y1 (N x D·h1) in W2's position-major column
    order.  Products go to BLAS through ``np.matmul(..., out=)``; every buffer
    is allocated once.  The 1/N of the update is applied to dz3 (N x V) rather
    than to all the gradients (as a mean loss does), and parameters, gradients
    and velocities each live in one flat array (the named arrays are views),
    so the momentum update is four vectorised passes in all.  dW1 is an
    ``np.add.at`` scatter of dy1 into the flat, contiguous gradient buffer of E.
    """

    def __init__(self, params: dict[str, np.ndarray], batch_size: int,
                 learning_rate: float, momentum: float):
        W1, W2 = params["W1"], params["W2"]
        h1, V = W1.shape
        h2, Dh1 = W2.shape
        N, D = batch_size, Dh1 // h1
        self.N, self.h1, self.lr, self.momentum = N, h1, learning_rate, momentum
        self.inv_n = 1.0 / N                            # the rounded reciprocal, as the C
        shapes = {"E": (V, h1), "W2": (h2, Dh1), "b2": (h2,), "W3": (V, h2), "b3": (V,)}
        size = sum(math.prod(s) for s in shapes.values())
        self.theta, self.grad, self.vel = np.empty(size), np.empty(size), np.zeros(size)
        self.p, self.g, offset = {}, {}, 0
        for name, shape in shapes.items():
            n = math.prod(shape)
            self.p[name] = self.theta[offset:offset + n].reshape(shape)
            self.g[name] = self.grad[offset:offset + n].reshape(shape)
            offset += n
        self.p["E"][...] = W1.T
        for name in ("W2", "b2", "W3", "b3"):
            self.p[name][...] = params[name]
        # Activations and scratch, examples as rows.
        self.y1 = np.empty((N, D, h1))
        self.y2 = np.empty((N, h2))
        self.y3 = np.empty((N, V))
        self.one_minus_y2 = np.empty((N, h2))
        self.dy2 = np.empty((N, h2))
        self.dy1 = np.empty((N, Dh1))
        self.row_max = np.empty((N, 1))
        self.scatter = np.empty((N, D, h1), dtype=np.intp)
        self.rows = np.arange(N)
        self.columns = np.arange(h1)

    def prepare(self, x: np.ndarray, t: np.ndarray):
        """Per-batch index arrays, (M, N, D) and (M, N), as this peer wants them."""
        x = x.astype(np.intp)
        return x, x * self.h1, t.astype(np.intp)

    def step(self, x: np.ndarray, x_h1: np.ndarray, t: np.ndarray) -> float:
        """One update on contexts x (N x D), x·h1, targets t (N); returns the batch CE."""
        p, g, N = self.p, self.g, self.N
        y1 = self.y1.reshape(N, -1)
        y2, y3, dy2, dy1 = self.y2, self.y3, self.dy2, self.dy1
        # Forward.
        np.take(p["E"], x, axis=0, out=self.y1)          # y1[i, d] = E[x[i, d]], row copies
        np.matmul(y1, p["W2"].T, out=y2)                 # z2 = y1 W2ᵀ + b2
        y2 += p["b2"]
        np.negative(y2, out=y2)                          # y2 = 1 / (1 + exp(-z2))
        np.exp(y2, out=y2)
        y2 += 1.0
        np.reciprocal(y2, out=y2)
        np.matmul(y2, p["W3"].T, out=y3)                 # z3 = y2 W3ᵀ + b3
        y3 += p["b3"]
        np.max(y3, axis=1, keepdims=True, out=self.row_max)   # y3 = softmax(z3), row-wise
        y3 -= self.row_max
        np.exp(y3, out=y3)
        np.sum(y3, axis=1, keepdims=True, out=self.row_max)
        np.reciprocal(self.row_max, out=self.row_max)
        y3 *= self.row_max
        picked = y3[self.rows, t]
        ce = -float(np.log(picked + CE_EPS).sum()) / N
        # Backward, every gradient already scaled by 1/N: dz3 overwrites y3,
        # dz2 overwrites dy2.
        y3[self.rows, t] = picked - 1.0                  # dz3 = (y3 - onehot(t)) / N
        y3 *= self.inv_n
        dz3 = y3
        np.matmul(dz3.T, y2, out=g["W3"])                # dW3 = dz3ᵀ y2
        np.sum(dz3, axis=0, out=g["b3"])
        np.matmul(dz3, p["W3"], out=dy2)                 # dy2 = dz3 W3
        np.subtract(1.0, y2, out=self.one_minus_y2)      # dz2 = (dy2 * y2) * (1 - y2)
        dy2 *= y2
        dy2 *= self.one_minus_y2
        dz2 = dy2
        np.matmul(dz2.T, y1, out=g["W2"])                # dW2 = dz2ᵀ y1
        np.sum(dz2, axis=0, out=g["b2"])
        np.matmul(dz2, p["W2"], out=dy1)                 # dy1 = dz2 W2
        gE = g["E"].reshape(-1)                          # dE[x[i, d]] += dy1[i, d·h1:(d+1)·h1]
        gE.fill(0.0)
        np.add(x_h1[:, :, None], self.columns, out=self.scatter)
        np.add.at(gE, self.scatter.reshape(-1), dy1.reshape(-1))
        # Momentum SGD over the flat buffers: vel = m·vel + g/N; θ = θ − lr·vel.
        self.vel *= self.momentum
        self.vel += self.grad
        np.multiply(self.vel, self.lr, out=self.grad)
        self.theta -= self.grad
        return ce

    def params(self) -> dict[str, np.ndarray]:
        """The parameters in the C layout (W1 is h1 x V)."""
        out = {name: self.p[name].copy() for name in ("W2", "b2", "W3", "b3")}
        out["W1"] = self.p["E"].T.copy()
        return out


class TorchPeer:
    """A torch_peer.py process for one dtype, alive for the whole run.

    Importing wordnet sets how long OpenMP threads spin (GOMP_SPINCOUNT)
    process-wide, and torch would share wordnet's libgomp: with the engine's
    earlier setting (OMP_WAIT_POLICY=PASSIVE) torch ran at half its speed
    here.  The child gets the environment bench.py was started with and
    never imports wordnet (see torch_peer.py): ``env``, the environment
    bench.py was started with.
    """

    def __init__(self, data: Path, dtype: str, sgd: str, env: dict, threads: int = 2,
                 model: str = "4gram"):
        self.params = PARAMS if model == "4gram" else ("W1", "W2")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "torch_peer.py"), "--data", str(data), "--dtype", dtype,
             "--sgd", sgd, "--threads", str(threads), "--model", model],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        HELPER_PIDS.add(self.proc.pid)
        hello = self._read()
        self.version, self.threads = hello["torch"], hello["threads"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the torch peer exited with status {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def measure(self, seconds: float) -> float:
        return self.ask(f"measure {seconds}")["rate"]

    def check(self, updates: int, path: Path):
        ces = self.ask(f"check {updates} {path}")["ces"]
        with np.load(path) as saved:
            return {k: saved[k] for k in self.params}, ces

    def peak_rss_mib(self) -> float:
        return self.ask("memory")["peak_rss_mib"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        HELPER_PIDS.discard(self.proc.pid)


class SixGemms:
    """The six products of a step on a batch of N columns (the C layout), nothing else."""

    def __init__(self, N: int, V: int, h1: int, h2: int, D: int, rng: np.random.Generator):
        def r(*shape):
            return rng.standard_normal(shape) * 0.01
        self.W2, self.W3 = r(h2, D * h1), r(V, h2)
        self.y1, self.y2, self.dz3, self.dz2 = r(D * h1, N), r(h2, N), r(V, N), r(h2, N)
        self.z2, self.z3, self.dy2, self.dy1 = (np.empty((h2, N)), np.empty((V, N)),
                                                 np.empty((h2, N)), np.empty((D * h1, N)))
        self.dW3, self.dW2 = np.empty((V, h2)), np.empty((h2, D * h1))

    def step(self):
        mm = np.matmul
        mm(self.W2, self.y1, out=self.z2)          # z2  = W2 y1
        mm(self.W3, self.y2, out=self.z3)          # z3  = W3 y2
        mm(self.dz3, self.y2.T, out=self.dW3)      # dW3 = dz3 y2ᵀ
        mm(self.W3.T, self.dz3, out=self.dy2)      # dy2 = W3ᵀ dz3
        mm(self.dz2, self.y1.T, out=self.dW2)      # dW2 = dz2 y1ᵀ
        mm(self.W2.T, self.dz2, out=self.dy1)      # dy1 = W2ᵀ dz2


class TwoHalves:
    """The six GEMMs on two halves of the minibatch, at once, on two Python threads.

    numpy releases the GIL inside matmul, so with single-threaded BLAS each
    thread keeps one core busy.  ``lockstep=False`` lets the threads run free
    (a step is done when both halves are: rate = the slower thread's); with
    ``lockstep=True`` they meet at a barrier after every step, as a
    data-parallel update must.
    """

    def __init__(self, halves: list[SixGemms], lockstep: bool):
        self.halves, self.lockstep = halves, lockstep
        self.rate_guess = 1000.0

    def measure(self, seconds: float) -> float:
        with blas_threads(1):
            return self._lockstep(seconds) if self.lockstep else self._free(seconds)

    def _free(self, seconds: float) -> float:
        rates = [0.0, 0.0]
        start = threading.Barrier(2)

        def work(i):
            start.wait()
            rates[i] = run_for(self.halves[i].step, seconds)

        self._run_threads(work)
        return min(rates)

    def _lockstep(self, seconds: float) -> float:
        steps = max(1, round(self.rate_guess * seconds))
        barrier = threading.Barrier(2)
        elapsed = [0.0, 0.0]

        def work(i):
            half = self.halves[i]
            barrier.wait()
            t0 = time.perf_counter()
            for _ in range(steps):
                half.step()
                barrier.wait()
            elapsed[i] = time.perf_counter() - t0

        self._run_threads(work)
        self.rate_guess = steps / max(elapsed)
        return self.rate_guess

    @staticmethod
    def _run_threads(work):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()


def check_peers(params, train_rows, peers, cfg) -> dict:
    """Run CHECK_UPDATES updates with our fast backend and with each peer from
    the same weights; every parameter must agree within CHECK_TOLERANCE.
    ``peers``: name -> a function running them, returning (parameters, batch CEs)."""
    fast = Model(params, "fast")
    run_cfg = dataclasses.replace(cfg, backend="fast", epochs=1, early_stop=CHECK_UPDATES)
    history = Trainer(fast, run_cfg).run(train_rows)
    want = fast.params()
    first_ce = history.train_ce[0]                   # the running mean after batch 0 = its CE
    report = {}
    for name, run in peers.items():
        got, ces = run()
        diff = max(float(np.max(np.abs(got[k] - want[k]))) for k in PARAMS)
        ce_diff = abs(ces[0] - first_ce)
        ok = diff < CHECK_TOLERANCE and ce_diff < CE_TOLERANCE
        report[name] = {"max_abs_param_diff": diff, "first_ce_diff": ce_diff, "ok": ok}
        print(f"  {name:<22} after {CHECK_UPDATES} updates: max |Δθ| = {diff:.2e}, "
              f"|Δ CE(batch 0)| = {ce_diff:.2e}  {'ok' if ok else 'FAILED'}")
    return report
