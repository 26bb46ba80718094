"""PNG reports: the cross-entropy curves of a run and a 2-D map of the word embeddings.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global
state) and written atomically.  matplotlib is imported when a figure is drawn:
its import takes over half a second, which the stages that draw nothing (and
`import wordnet.pipeline`) need not pay.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .fileio import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def ce_curves(path: Path, train_ce: list[float], valid_ce: list[tuple[int, float]],
              batches_per_epoch: int, title: str = "") -> None:
    """Training CE at every iteration (a running mean reset at each epoch, as the C
    reports it) and validation CE at each validation, against the iteration."""
    fig = _figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    steps = np.arange(1, len(train_ce) + 1)
    ax.plot(steps, train_ce, lw=0.8, label="training CE (running mean per epoch)")
    if valid_ce:
        v_steps, v_ce = zip(*valid_ce)
        ax.plot(v_steps, v_ce, "o-", ms=4, label="validation CE")
    for boundary in range(batches_per_epoch, len(train_ce), batches_per_epoch):
        ax.axvline(boundary + 0.5, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="iteration", ylabel="cross-entropy (nats)", title=title or "Cross-entropy")
    ax.legend()
    _save(fig, path)


def embedding_map(path: Path, W1: np.ndarray, words, title: str = "") -> None:
    """Each word at its embedding (a column of W1) projected on the first two
    principal components."""
    X = W1.T - W1.T.mean(axis=0)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    components = Vt[:2]
    largest = components[np.arange(2), np.abs(components).argmax(axis=1)]
    xy = X @ (components * np.sign(largest)[:, None]).T     # sign fixed: reproducible maps
    fig = _figure(figsize=(14, 14))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.05, top=0.96)   # a fixed layout is fast
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], s=0)
    for (x, y), word in zip(xy, words):
        ax.annotate(word, (x, y), ha="center", va="center", fontsize=8)
    ax.set(xlabel="principal component 1", ylabel="principal component 2",
           title=title or "Word embeddings (W1 columns, PCA)")
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write(Path(path), buffer.getvalue())
