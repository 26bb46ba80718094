"""PNG reports: the cross-entropy curves of a run and a 2-D map of the word embeddings.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global
state) and written atomically.  matplotlib and scikit-learn are imported when a
figure is drawn: their imports take seconds, which the stages that draw nothing
(and `import wordnet.pipeline`) need not pay.

Both figures take a ``title`` naming the run (its name, recipe and backend), so
that runs set side by side on MLflow's compare page can be told apart.
"""
from __future__ import annotations

import functools
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .fileio import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNIFORM_CE = math.log(250)      # the CE of a uniform guess over the vocabulary: where training starts
CE_TOP = 5.75                   # a little above it, so that the untrained start (5.55) shows
CE_BOTTOM = 2.0                 # below any CE the reference recipe reaches (valid 2.6, train 2.4)

PERPLEXITY = 30                 # neighbourhoods of about 30 words among 250
TSNE_ITERATIONS = 500           # KL divergence within 3e-4 of 1,000 iterations' for 250 words
LABEL_SIZE = 10                 # points: legible when MLflow shows the 1,000-pixel map
POINT_GAP = 2.0                 # pixels kept free around another word's point (its dot)
LABEL_AIR = np.array([4.0, 1.0])   # pixels between labels: side by side, "end" "case" is not "endcase"


def _figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure
    return Figure(**kwargs)


# -- cross-entropy -----------------------------------------------------------------------------

def ce_curves(path: Path, train_ce: list[float], valid_ce: list[tuple[int, float]],
              batches_per_epoch: int, title: str = "",
              final_valid_ce: float | None = None) -> None:
    """The plot of :func:`draw_ce_curves`, written to ``path``."""
    _save(draw_ce_curves(train_ce, valid_ce, batches_per_epoch, title, final_valid_ce), path)


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
    fig = _figure(figsize=(9, 5), dpi=100, layout="constrained")
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


# -- embedding map -----------------------------------------------------------------------------

def embedding_map(path: Path, W1: np.ndarray, words, title: str = "") -> None:
    """Each word at its embedding (a column of W1) laid out by t-SNE, as the course's
    assignment showed them, every label legible (see :func:`place_labels`)."""
    fig, _ = draw_embedding_map(W1, words, title)
    _save(fig, path)


def tsne(W1: np.ndarray) -> np.ndarray:
    """The 2-D t-SNE layout of the columns of ``W1`` (one row per word); the same
    for the same W1: a fixed seed and the PCA initialisation."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    # One OpenMP thread: on two cores, two threads took 5.3 s instead of 0.8 s
    # (and a single thread sums the gradient in one order: the same layout everywhere).
    with threadpool_limits(1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=PERPLEXITY, init="pca", random_state=0,
                    max_iter=TSNE_ITERATIONS).fit_transform(np.asarray(W1.T, np.float64))


def draw_embedding_map(W1: np.ndarray, words, title: str = ""):
    """(figure, its word labels): the map, not yet saved, for tests to measure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    xy = tsne(W1)
    fig = _figure(figsize=(10, 10), dpi=100)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)   # fixed: transforms hold
    ax = fig.add_subplot()
    ax.set(xticks=[], yticks=[])
    for side in ax.spines.values():
        side.set_color("0.8")
    fig.suptitle(title or "Word embeddings", fontsize=13)
    ax.set_title(f"the {len(words)} words' embeddings (columns of W1) by t-SNE, "
                 f"perplexity {PERPLEXITY}", fontsize=10, color="0.3")
    renderer = FigureCanvasAgg(fig).get_renderer()
    box = ax.get_window_extent(renderer)
    # Equal scales on both axes (t-SNE distances have no direction), with a margin.
    low, high = xy.min(axis=0), xy.max(axis=0)
    scale = 1.1 * max((high - low) / [box.width, box.height])      # data units per pixel
    middle = (low + high) / 2
    ax.set_xlim(middle[0] - scale * box.width / 2, middle[0] + scale * box.width / 2)
    ax.set_ylim(middle[1] - scale * box.height / 2, middle[1] + scale * box.height / 2)

    to_pixels = ax.transData
    anchors = to_pixels.transform(xy)
    labels = [ax.text(x, y, word, ha="center", va="center", fontsize=LABEL_SIZE,
                      # ".", ",", ";" are a few pixels: bold, to be told apart
                      fontweight="normal" if any(c.isalnum() for c in word) else "bold")
              for (x, y), word in zip(xy, words)]
    extents = [label.get_window_extent(renderer) for label in labels]
    sizes = np.array([(e.width, e.height) for e in extents])
    # where each label's box centre is, relative to its anchor (a font's descent)
    shifts = np.array([((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2) for e in extents]) - anchors
    centres = place_labels(anchors, sizes, (box.x0, box.y0, box.x1, box.y1))
    moved = np.any(np.abs(centres - anchors) > 0.5, axis=1)
    for label, centre, shift in zip(labels, centres, shifts):
        label.set_position(to_pixels.inverted().transform(centre - shift))
    for i in np.flatnonzero(moved):         # a dot at the word's place, a line to its label
        end = np.clip(anchors[i], centres[i] - sizes[i] / 2, centres[i] + sizes[i] / 2)
        ax.plot(*to_pixels.inverted().transform([anchors[i], end]).T, color="0.65", lw=0.6,
                zorder=1)
        ax.plot(*xy[i], ".", ms=3, color="0.45", zorder=1)
    return fig, labels


def place_labels(anchors: np.ndarray, sizes: np.ndarray, area: tuple) -> np.ndarray:
    """Centres (pixels) for labels of ``sizes`` (width, height) meant for ``anchors``,
    so that no two labels' boxes overlap, none covers another word's point, and all
    lie inside ``area`` (x0, y0, x1, y1).

    Greedy, one label at a time: among positions on a 2-pixel grid around its
    anchor, nearest first, the first free one (its own point first of all).  A
    library was considered: adjustText pushes labels apart by repulsion until a
    step budget runs out and textalloc, which searches candidates like this,
    draws the labels it cannot place over the others or drops them; neither
    promises what the map needs, no overlap and every word.  This one places a
    label wherever the area has a free spot for it; only in an area too full for
    that would it leave a label on its point, overlapping (the test would fail).
    """
    x0, y0, x1, y1 = area
    reach = math.hypot(x1 - x0, y1 - y0)                # from any point to any corner
    placed = np.empty((0, 4))                           # boxes: x0, y0, x1, y1
    centres = anchors.astype(float)
    for i in range(len(anchors)):
        half = sizes[i] / 2 + LABEL_AIR / 2
        others = np.delete(anchors, i, axis=0)
        for offsets in _offsets_nearest_first(reach):
            c = anchors[i] + offsets
            lo, hi = c - half, c + half
            inside = (lo[:, 0] >= x0) & (lo[:, 1] >= y0) & (hi[:, 0] <= x1) & (hi[:, 1] <= y1)
            # only the obstacles near this chunk's candidates matter: test those
            reach_lo, reach_hi = lo.min(axis=0) - POINT_GAP, hi.max(axis=0) + POINT_GAP
            near = np.all((placed[:, :2] < reach_hi) & (placed[:, 2:] > reach_lo), axis=1)
            boxes = placed[near]
            points = others[np.all((others > reach_lo) & (others < reach_hi), axis=1)]
            hits_label = ((lo[:, None, 0] < boxes[:, 2]) & (boxes[:, 0] < hi[:, None, 0])
                          & (lo[:, None, 1] < boxes[:, 3]) & (boxes[:, 1] < hi[:, None, 1]))
            hits_point = np.all((points > lo[:, None] - POINT_GAP)
                                & (points < hi[:, None] + POINT_GAP), axis=2)
            free = inside & ~hits_label.any(axis=1) & ~hits_point.any(axis=1)
            if free.any():
                centres[i] = c[free.argmax()]
                break
        # (when no position is free, the label stays on its point)
        placed = np.vstack([placed, np.r_[centres[i] - half, centres[i] + half]])
    return centres


def _offsets_nearest_first(reach: float):
    """Offsets (pixels) on a 2-pixel grid out to ``reach``, nearest first, in chunks."""
    for k in range(max(1, math.ceil(math.log2(reach / 16)))):   # bands out to 32·2^k ≥ reach
        band = _band(k)
        for start in range(0, len(band), 512):
            yield band[start:start + 512]


@functools.cache
def _band(k: int) -> np.ndarray:
    """The offsets at distances in [16·2^k, 32·2^k) ([0, 32) for k = 0), nearest first
    (equally near ones in the grid's order: a stable sort).  Most labels find room in
    the first band: the farther ones are rarely built."""
    inner, outer = (0 if k == 0 else 16 * 2**k), 32 * 2**k
    grid = np.arange(-outer, outer + 1, 2.0)
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    squared = np.sum(offsets**2, axis=1)
    keep = (inner**2 <= squared) & (squared < outer**2)
    return offsets[keep][np.argsort(squared[keep], kind="stable")]


def _save(fig: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write(Path(path), buffer.getvalue())
