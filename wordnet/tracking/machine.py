"""What a run ran on and from: the CPU, the kernels' instruction set, the threads, the
commit of the code."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def machine_tags(threads: int, fixed: bool = True) -> dict[str, str]:
    """What a run's speed (and, for float32 and BLAS, its last bits) depends on besides
    its recipe: the CPU, the instruction set the kernels were built for, the threads
    (``fixed``, or up to that many as the load allows: "1-2")."""
    from wordnet._cpu import BUILT_FOR
    return {"wordnet.cpu": cpu_model(), "wordnet.isa": BUILT_FOR or "compiler default",
            "wordnet.threads": str(threads) if fixed or threads == 1 else f"1-{threads}"}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit() -> str:
    """The commit this package was built from: the stamp setup.py writes at build time,
    else (running from a source checkout) git's HEAD there, else "unknown"."""
    try:
        from wordnet._commit import COMMIT
        return COMMIT
    except ImportError:                       # not built: a source checkout, or a copy
        pass
    source = Path(__file__).resolve().parents[2]
    if not (source / "pyproject.toml").is_file():
        return "unknown"                      # git here would answer for some other tree
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
