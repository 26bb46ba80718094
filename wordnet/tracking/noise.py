"""What MLflow prints of its own accord: its INFO lines ("Running the predict function
to generate output based on input example"), its progress bars ("Downloading
artifacts") and the lines it prints when registering a model.  A command of ours says
what it did in its own lines; MLflow's are shown with ``--verbose``.

The settings are MLflow's public environment variables, set for this process and its
children (a sweep's trials) unless the user set them: they take effect when MLflow is
imported, which the commands that need it do later.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os

QUIET = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
_verbose = False


def quiet(verbose: bool) -> None:
    """MLflow's INFO lines and progress bars off, unless ``verbose``."""
    global _verbose
    _verbose = verbose
    if not verbose:
        for name, value in QUIET.items():
            os.environ.setdefault(name, value)


def silently(call):
    """``call`` with what MLflow prints on stderr itself (``eprint``) dropped, unless
    verbose; its exceptions go through."""
    @functools.wraps(call)
    def silent(*args, **kwargs):
        if _verbose:
            return call(*args, **kwargs)
        with contextlib.redirect_stderr(io.StringIO()):
            return call(*args, **kwargs)
    return silent
