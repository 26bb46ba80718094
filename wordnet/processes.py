"""A new Python for work done beside the caller: the painter's plots, a sweep's trials."""
from __future__ import annotations

import sys
from pathlib import Path

# This package's folder: a new Python imports this very package, whatever the working
# folder holds (-P: not the working folder first, where a source checkout's wordnet/
# has no compiled kernels).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def python_command(code: str, installed: bool = False) -> list[str]:
    """``python -P -c CODE`` on this package, or on the one installed where it runs
    (``installed``: a Ray worker, which may have imported its tasks' module from
    elsewhere)."""
    prefix = "import sys; " if installed else f"import sys; sys.path.insert(0, {str(PACKAGE_ROOT)!r}); "
    return [sys.executable, "-P", "-c", prefix + code]
