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

See benchmarks/README.md for the options and how to read the output.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import scipy
from rates import run_for  # benchmarks/rates.py, beside this script
from threadpoolctl import threadpool_info, threadpool_limits

# The environment this script was started with, before importing wordnet
# changes it (GOMP_SPINCOUNT): the torch peer's process gets this one.
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
START_ENV = dict(os.environ)

from wordnet.data.dataset import load_dataset  # noqa: E402
from wordnet.models.fourgram import (  # noqa: E402
    PARAMS,
    FourGramConfig,  # noqa: E402
    Model,
)
from wordnet.training.trainer import Trainer, batches  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HELPER_PIDS: set[int] = set()    # our child processes that run measurements (the torch peer)
C_REFERENCE_RATE = 90.0          # updates/s of the C reference, SPEC section 8 (not measured here)
CHECK_UPDATES = 10               # updates compared between the peers and our fast backend
CHECK_TOLERANCE = 1e-10          # max |difference| of any parameter after them
CE_TOLERANCE = 1e-9              # torch's CE has no "+ exp(-30)": about 1e-11 apart
CE_EPS = math.exp(-30.0)         # the C reference's log(y3 + exp(-30))
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ----------------------------------------------------------------------------
# Helpers: thread limits, timing, memory
# ----------------------------------------------------------------------------

def blas_threads(n: int | None):
    """A context limiting every loaded BLAS to n threads; None keeps the library default."""
    return threadpool_limits(limits=n, user_api="blas") if n else contextlib.nullcontext()


def cycle_batches(step_on_batch, batch_count: int):
    """A no-argument step that feeds the minibatches 0, 1, ..., M-1, 0, ... in turn."""
    b = 0

    def step():
        nonlocal b
        step_on_batch(b)
        b = b + 1 if b + 1 < batch_count else 0
    return step


class CpuMeter:
    """CPU used by *other* processes (and the hypervisor's steal) during a measurement.

    The whole machine's busy time (/proc/stat) minus the CPU time of this
    process, of its measuring children and of the children it waited for, in
    cores: 0.0 means the machine
    was ours alone; 1.0 means something else kept one of the two cores busy,
    which ruins multi-threaded timings.
    NaN where /proc/stat is missing.
    """

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK")

    def sample(self):
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)      # idle + iowait
        busy = sum(fields[:8]) - idle                                  # up to steal
        own = os.times()                     # this process, and its children once waited for
        mine = own.user + own.system + own.children_user + own.children_system
        for pid in HELPER_PIDS:              # running children that measure for us
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                mine += (int(stat[11]) + int(stat[12])) / self.hz     # utime + stime
            except (OSError, ValueError, IndexError):
                pass
        return time.perf_counter(), busy / self.hz, mine

    @staticmethod
    def foreign(a, b) -> float:
        if a is None or b is None:
            return math.nan
        wall = b[0] - a[0]
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / wall) if wall > 0 else math.nan

    def wait_idle(self, limit: float, budget: float) -> float:
        """Wait (at most ``budget`` seconds) until others use at most ``limit`` cores
        over one second; returns the seconds spent waiting."""
        start, said = time.perf_counter(), False
        while time.perf_counter() - start < budget:
            a = self.sample()
            time.sleep(1.0)
            busy = self.foreign(a, self.sample())
            if not busy > limit:
                break
            if not said:
                print(f"  waiting for the machine to go idle (others use {busy:.2f} cores)")
                said = True
        return time.perf_counter() - start


def peak_rss_mib() -> float:
    """The process's peak resident set so far (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mib() -> float:
    """The current resident set (Linux /proc), NaN elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_mark(memory: dict, stage: str) -> None:
    memory[stage] = {"rss": rss_mib(), "peak": peak_rss_mib()}


# ----------------------------------------------------------------------------
# The numpy peer
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# The PyTorch peer, in a process of its own
# ----------------------------------------------------------------------------

class TorchPeer:
    """A torch_peer.py process for one dtype, alive for the whole run.

    Importing wordnet sets how long OpenMP threads spin (GOMP_SPINCOUNT)
    process-wide, and torch would share wordnet's libgomp: with the engine's
    earlier setting (OMP_WAIT_POLICY=PASSIVE) torch ran at half its speed
    here.  The child gets the environment bench.py was started with and
    never imports wordnet (see torch_peer.py).
    """

    def __init__(self, data: Path, dtype: str, sgd: str, threads: int = 2):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "torch_peer.py"), "--data", str(data), "--dtype", dtype,
             "--sgd", sgd, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=START_ENV)
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
            return {k: saved[k] for k in PARAMS}, ces

    def peak_rss_mib(self) -> float:
        return self.ask("memory")["peak_rss_mib"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        HELPER_PIDS.discard(self.proc.pid)


# ----------------------------------------------------------------------------
# The six GEMMs of a step, alone
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# Benchmarks: one object per table row
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class Bench:
    key: str
    label: str
    measure: object                       # seconds -> updates (or GEMM steps) per second
    group: str = "peer"
    rates: list = dataclasses.field(default_factory=list)
    foreign: list = dataclasses.field(default_factory=list)   # other processes' CPU, per repeat
    retries: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else math.nan

    @property
    def best(self) -> float:
        return max(self.rates) if self.rates else math.nan


def stepping(step, threads: int | None):
    """measure(seconds) for a step function, under a BLAS thread count."""
    def measure(seconds: float) -> float:
        with blas_threads(threads):
            return run_for(step, seconds)
    return measure


class TrainerTiming:
    """measure(seconds) through the public API: Trainer(model, config).run(train_rows).

    A run of U updates is FourGramConfig(epochs=U // M + 1, early_stop=U % M); U is
    chosen from the last measured rate so that the run lasts about
    ``seconds``.  The rate is the Trainer's own History.updates / .seconds.
    """

    def __init__(self, model: Model, config: FourGramConfig, train_rows: np.ndarray,
                 threads: int | None):
        self.model, self.config, self.train, self.threads = model, config, train_rows, threads
        self.batch_count = len(train_rows) // config.batch_size
        self.rate = None

    def run(self, updates: int):
        cfg = dataclasses.replace(self.config, epochs=updates // self.batch_count + 1,
                                  early_stop=updates % self.batch_count)
        with blas_threads(self.threads):
            history = Trainer(self.model, cfg).run(self.train)
        assert history.updates == updates, (history.updates, updates)
        return history

    def __call__(self, seconds: float) -> float:
        if self.rate is None:
            self.rate = self.run(10).updates_per_second
        history = self.run(max(1, round(self.rate * seconds)))
        self.rate = history.updates_per_second
        return self.rate


# ----------------------------------------------------------------------------
# Correctness check of the peers
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# The environment
# ----------------------------------------------------------------------------

def source_state() -> dict:
    """The engine's commit, and whether wordnet/ or pyx/ differ from it (read-only git)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=30)
    try:
        head = git("rev-parse", "--short", "HEAD")
        diff = git("diff", "--quiet", "HEAD", "--", "wordnet", "pyx")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "engine_modified": None}
    return {"commit": head.stdout.strip() or None,
            "engine_modified": {0: False, 1: True}.get(diff.returncode)}


def environment() -> dict:
    env = {
        **source_state(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "openblas_env": {v: START_ENV.get(v) for v in OPENBLAS_OVERRIDES},
        "omp_wait": {var: {"at_start": START_ENV.get(var),
                           "after_importing_wordnet": os.environ.get(var)}
                     for var in OMP_WAIT_VARIABLES},
    }
    return env


def blas_libraries() -> list[dict]:
    """The BLAS libraries loaded so far, as threadpoolctl reports them."""
    return [{k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                     "threading_layer", "filepath")}
            for lib in threadpool_info() if lib.get("user_api") == "blas"]


def print_blas(libraries: list[dict]) -> None:
    for lib in libraries:
        owner = Path(lib["filepath"]).parent.name
        print(f"BLAS {lib['internal_api']} {lib['version']} ({owner}): kernel/core type "
              f"{lib['architecture']}, {lib['num_threads']} threads by default")


def print_environment(env: dict) -> None:
    modified = {True: " + uncommitted changes in wordnet/ or pyx/", False: ""}.get(
        env["engine_modified"], "")
    print(f"engine at commit {env['commit']}{modified}")
    print(f"python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, "
          f"{env['cpus']} CPUs, load average {env['loadavg_start'][0]:.2f}")
    for var, value in env["openblas_env"].items():
        if value is None:
            print(f"  {var}: unset")
        else:
            print(f"  {var}={value}: SET — the kernels above may not be the CPU's own; run with "
                  f"env -u {' -u '.join(OPENBLAS_OVERRIDES)}")
    for var, omp in env["omp_wait"].items():
        if omp["at_start"] != omp["after_importing_wordnet"]:
            print(f"  {var}: {omp['at_start'] or 'unset'} at start, "
                  f"{omp['after_importing_wordnet']} once wordnet is imported (the engine's "
                  f"choice, in force for our rows; the torch peer runs without it)")
    if env["loadavg_start"][0] > 0.5:
        print("  note: the machine is not idle; ratios in one run stay comparable, "
              "absolute figures do not")


# ----------------------------------------------------------------------------
# --tracking: the quick and reference pipelines with and without MLflow
# ----------------------------------------------------------------------------

def pipeline_executable() -> str | None:
    beside = Path(sys.executable).parent / "wordnet-pipeline"
    return str(beside) if beside.is_file() else shutil.which("wordnet-pipeline")


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


def inference_section(s: Setup, seconds: float) -> dict:
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
    peers = {d: TorchPeer(data, d, args.torch_sgd) for d in dtypes}
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
    env = environment()
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
