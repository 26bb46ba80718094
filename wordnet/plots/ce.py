"""The cross-entropy curves of a run: training, periodic and final validation."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .agg import figure, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNIFORM_CE = math.log(250)      # a uniform guess's CE over the 250 words: where training starts
CE_TOP = 5.75                   # a little above it, so that the untrained start (5.55) shows
CE_BOTTOM = 2.0                 # below any CE the reference recipe reaches (valid 2.6, train 2.4)


def ce_curves(path: Path, train_ce: list[float], valid_ce: list[tuple[int, float]],
              batches_per_epoch: int, title: str = "",
              final_valid_ce: float | None = None) -> None:
    """The plot of :func:`draw_ce_curves`, written to ``path``."""
    save(draw_ce_curves(train_ce, valid_ce, batches_per_epoch, title, final_valid_ce), path)


def draw_ce_curves(train_ce: list[float], valid_ce: list[tuple[int, float]],
                   batches_per_epoch: int, title: str = "",
                   final_valid_ce: float | None = None) -> Figure:
    """Training CE at every iteration (a running mean reset at each epoch, as the C
    reports it), the periodic validation CEs, and the final validation CE, against
    the iteration; epochs are marked on a top axis and by thin vertical lines.

    The latest validation CE is written on the plot: ``final_valid_ce`` (the
    validate stage's, on the final model) when given, else the last periodic one.

    The y range is the same for every run whose CE stays above ``CE_BOTTOM`` + 0.1:
    from ``CE_BOTTOM`` (lower when a run goes below it) to ``CE_TOP``, just above
    ln 250, where every model starts.  Runs side by side then share one scale;
    a model worse than a uniform guess is off the chart, which hides nothing of
    interest.
    """
    from matplotlib.ticker import MaxNLocator
    fig = figure(figsize=(9, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    steps = np.arange(1, len(train_ce) + 1)
    ax.plot(steps, train_ce, lw=0.8, color="C0", label="training CE (running mean per epoch)")
    points = list(valid_ce)
    if final_valid_ce is not None:
        points.append((len(train_ce), final_valid_ce))
    if valid_ce:
        v_steps, v_ce = zip(*valid_ce)
        ax.plot(v_steps, v_ce, "o-", ms=4, color="C1", label="validation CE")
    if final_valid_ce is not None:
        ax.plot([len(train_ce)], [final_valid_ce], "*", ms=13, color="C3",
                label="validation CE of the final model")
    if points:
        step, ce = points[-1]
        ax.annotate(f"valid CE {ce:.3f}", (step, ce), xytext=(-8, 14), textcoords="offset points",
                    ha="right", fontsize=11, fontweight="bold", color="C3",
                    arrowprops=dict(arrowstyle="-", color="C3", lw=0.8))
    ax.axhline(UNIFORM_CE, color="0.6", lw=0.8, ls=":", zorder=0)
    ax.text(1, UNIFORM_CE, " uniform guess, ln 250", va="bottom", fontsize=8, color="0.4")

    for boundary in range(batches_per_epoch, len(train_ce), batches_per_epoch):
        ax.axvline(boundary + 0.5, color="0.85", lw=0.8, zorder=0)
    if batches_per_epoch < len(train_ce):        # a top axis: epoch e begins at tick e
        epochs = ax.secondary_xaxis("top", functions=(
            lambda it: (it - 0.5) / batches_per_epoch + 1,
            lambda e: (e - 1) * batches_per_epoch + 0.5))
        epochs.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        epochs.set_xlabel("epoch")

    lowest = min([*train_ce, *(ce for _, ce in points)], default=CE_BOTTOM)
    ax.set_ylim(min(CE_BOTTOM, math.floor((lowest - 0.1) * 4) / 4), CE_TOP)
    ax.set_xlim(0, max(len(train_ce), 1) * 1.03)   # room for the final star
    ax.set(xlabel="iteration", ylabel="cross-entropy (nats)")
    ax.grid(axis="y", color="0.92", lw=0.8)
    fig.suptitle(title or "Cross-entropy", fontsize=13)
    ax.legend(loc="upper right")
    return fig
