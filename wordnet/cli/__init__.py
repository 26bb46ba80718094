"""``wordnet-pipeline``: train, evaluate and reproduce (``run``, ``sweep``, ``log``), fetch
the data, use a model (``predict``, ``generate``, ``nearest``, ``distance``, ``info``),
serve it over HTTP (``serve``) and compare models' embeddings (``compare-embeddings``).

Each command declares its options, checks what is about the command line itself,
and calls into the package: ``wordnet.runs`` (a run, its data and store,
comparisons, finding a model), ``wordnet.sweeps``, ``wordnet.use`` (what using a
model shows), ``wordnet.progress`` (the training's progress line) and
``wordnet.exits`` (exit statuses and one-line errors).  The commands live in
``training`` and ``models``, their shared options in ``group``.
"""
from __future__ import annotations

import gc

from wordnet.cli import models, training  # noqa: F401  (their commands join the group)
from wordnet.cli.group import cli
from wordnet.exits import open_standard_streams

__all__ = ["cli", "main"]


def main():
    open_standard_streams()                     # `2>&-`: on /dev/null, not failing
    try:
        cli(prog_name="wordnet-pipeline")
    finally:
        # Exiting, the interpreter collects the cycles of every module imported: 1.4 s
        # after MLflow and its store, 0.7 s after scikit-learn.  Nothing of ours needs
        # that collection (files are closed, runs ended), so it skips it.
        gc.freeze()
