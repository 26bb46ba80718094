"""The machine a benchmark runs on: BLAS threads, the CPU other processes take,
memory, and the environment (the engine's commit, the libraries, the variables that
change the kernels, the console script).  Imports nothing of wordnet's."""
from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from threadpoolctl import threadpool_info, threadpool_limits

REPO = Path(__file__).resolve().parent.parent
HELPER_PIDS: set[int] = set()    # our child processes that run measurements (the torch peer)
# What importing wordnet may change (GOMP_SPINCOUNT), and what must be unset to measure
# the CPU's own kernels.
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_threads(n: int | None):
    """A context limiting every loaded BLAS to n threads; None keeps the library default."""
    return threadpool_limits(limits=n, user_api="blas") if n else contextlib.nullcontext()


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


def environment(start_env: dict) -> dict:
    """The engine's commit, the versions, the CPUs and load, and the variables that
    change the kernels: ``start_env``, the environment the script was started with,
    against the one importing wordnet made."""
    env = {
        **source_state(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "openblas_env": {v: start_env.get(v) for v in OPENBLAS_OVERRIDES},
        "omp_wait": {var: {"at_start": start_env.get(var),
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


def pipeline_executable() -> str | None:
    """The `wordnet-pipeline` beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "wordnet-pipeline"
    return str(beside) if beside.is_file() else shutil.which("wordnet-pipeline")
