"""The map of the word embeddings: t-SNE, every label legible."""
from __future__ import annotations

import functools
import json
import math
from html import escape
from pathlib import Path

import numpy as np

from wordnet.fileio import atomic_write

from .agg import canvas, figure, save

PERPLEXITY = 30                 # neighbourhoods of about 30 words among 250
TSNE_ITERATIONS = 500           # KL divergence within 3e-4 of 1,000 iterations' for 250 words
LABEL_SIZE = 10                 # points: legible when MLflow shows the 1,000-pixel map
POINT_GAP = 2.0                 # pixels kept free around another word's point (its dot)
LABEL_AIR = np.array([4.0, 1.0])   # pixels between labels: "end" "case", not "endcase"
# Maps compared: two to a row, the row as wide as one map alone (MAP_INCHES at 100 dpi)
MAPS_ACROSS = 2
MAP_INCHES = 12
TITLE_INCHES = 0.7
COMPARED_LABEL_SIZE = 8         # points: a map of 600 pixels holds its 250 labels apart
# A map holds about as many labels as the course's 250 words legibly: of a larger
# vocabulary (a built folder's, ordered by frequency) it shows the most frequent.
MAP_WORDS = 300
UNK = "<unk>"                   # not a word: left off the map


def embedding_map(path: Path, W1: np.ndarray, words, title: str = "",
                  html: Path | None = None) -> None:
    """Each word at its embedding (a column of W1) laid out by t-SNE, as the course's
    assignment showed them, every label legible (see :func:`place_labels`); with
    ``html``, also that map as a page where pointing at a word lights up its nearest
    words in the embedding space (the t-SNE layout only approximates them).  Of more
    than MAP_WORDS words, the first MAP_WORDS (:func:`most_frequent`)."""
    vocabulary = len(words)
    W1, words = most_frequent(W1, words)
    fig, labels, anchors = draw_embedding_map(W1, words, title, of=vocabulary)
    save(fig, path)
    if html is not None:
        atomic_write(Path(html), map_page(fig, labels, anchors, W1, title).encode())


def most_frequent(W1: np.ndarray, words) -> tuple[np.ndarray, list]:
    """The columns of W1 and the words a map shows: all, up to MAP_WORDS of them; else
    the first MAP_WORDS but <unk> (a vocabulary ``data build`` made is ordered by
    frequency)."""
    words = list(words)
    if len(words) <= MAP_WORDS and UNK not in words:
        return W1, words                    # the course's 250: all of them, as they are
    shown = [i for i, w in enumerate(words) if w != UNK][:MAP_WORDS]
    return W1[:, shown], [words[i] for i in shown]


def perplexity(words: int) -> float:
    """t-SNE's perplexity for a map of ``words`` words: PERPLEXITY, or for a small
    vocabulary (a user's text) a third of the other words, as t-SNE needs fewer
    neighbours than words."""
    return min(PERPLEXITY, max((words - 1) / 3, 0.5))


def tsne(W1: np.ndarray) -> np.ndarray:
    """The 2-D t-SNE layout of the columns of ``W1`` (one row per word); the same
    for the same W1: a fixed seed and the PCA initialisation."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    if W1.shape[1] < 2:
        return np.zeros((W1.shape[1], 2))   # one word: nothing to lay out
    # One thread, OpenMP's and BLAS's: with two OpenMP threads, on a two-core machine
    # where another process used a core, t-SNE took 5.3 s instead of 0.8 s; and its
    # PCA of a 250 x 50 matrix took 0.58 s (0.3 s of CPU) with OpenBLAS's two threads
    # instead of 0.006 s with one, for the same bits.
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity(W1.shape[1]), init="pca",
                    random_state=0,
                    max_iter=TSNE_ITERATIONS).fit_transform(np.asarray(W1.T, np.float64))


def draw_embedding_map(W1: np.ndarray, words, title: str = "", of: int | None = None):
    """(figure, its word labels, the words' points in pixels): the map, not yet saved;
    ``of``: the vocabulary's size, when ``words`` are its most frequent."""
    fig = figure(figsize=(10, 10), dpi=100)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)   # fixed: transforms hold
    fig.suptitle(title or "Word embeddings", fontsize=13)
    ax = fig.add_subplot()
    shown = (f"the {len(words)} most frequent of {of:,} words'" if of and of > MAP_WORDS
             else f"the {len(words)} words'")
    ax.set_title(f"{shown} embeddings (columns of W1) by t-SNE, "
                 f"perplexity {perplexity(len(words)):.3g}", fontsize=10, color="0.3")
    labels, anchors = _map_on(fig, ax, tsne(W1), words)
    return fig, labels, anchors


def embedding_maps(path: Path, W1s: list[np.ndarray], titles: list[str], words,
                   title: str = "") -> None:
    """Several models' maps in a grid (:func:`draw_embedding_maps`), as one PNG; of more
    than MAP_WORDS words, the most frequent (:func:`most_frequent`)."""
    cut = [most_frequent(W1, words) for W1 in W1s]
    W1s, words = [W1 for W1, _ in cut], cut[0][1] if cut else words
    save(draw_embedding_maps(W1s, titles, words, title)[0], path)


def draw_embedding_maps(W1s: list[np.ndarray], titles: list[str], words, title: str = ""):
    """(figure, each map's word labels): several models' maps, MAPS_ACROSS to a row, each
    laid out as :func:`embedding_map` lays out one and turned and mirrored to fit the
    first's best (t-SNE's directions mean nothing), so that the same words sit at about
    the same place.  A row is as wide as one map alone: MLflow's artifact viewer, about
    1,000 pixels wide, shows it without shrinking its labels much."""
    from scipy.linalg import orthogonal_procrustes
    layouts = [tsne(W1) for W1 in W1s]
    first = layouts[0] - layouts[0].mean(axis=0)
    for n, xy in enumerate(layouts[1:], 1):
        xy = xy - xy.mean(axis=0)
        rotation, _ = orthogonal_procrustes(xy, first)
        layouts[n] = xy @ rotation
    across = min(MAPS_ACROSS, len(W1s))
    down = math.ceil(len(W1s) / across)
    side = MAP_INCHES / MAPS_ACROSS
    fig = figure(figsize=(side * across, side * down + TITLE_INCHES), dpi=100)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01,
                        top=1 - TITLE_INCHES / (side * down + TITLE_INCHES),
                        wspace=0.02, hspace=0.06)
    fig.suptitle(title or "Word embeddings compared", fontsize=13)
    labels = []
    for n, (xy, name) in enumerate(zip(layouts, titles), 1):
        ax = fig.add_subplot(down, across, n)
        ax.set_title(name, fontsize=10, color="0.3")
        labels.append(_map_on(fig, ax, xy, words, COMPARED_LABEL_SIZE)[0])
    return fig, labels


def _map_on(fig, ax, xy: np.ndarray, words, size: float = LABEL_SIZE):
    """The words at their points ``xy`` on ``ax``, every label legible: (labels, the
    points in pixels)."""
    from matplotlib.collections import LineCollection
    ax.set(xticks=[], yticks=[])
    for side in ax.spines.values():
        side.set_color("0.8")
    renderer = canvas(fig).get_renderer()
    box = ax.get_window_extent(renderer)
    # Equal scales on both axes (t-SNE distances have no direction), with a margin.
    low, high = xy.min(axis=0), xy.max(axis=0)
    scale = 1.1 * max((high - low) / [box.width, box.height])      # data units per pixel
    scale = scale or 1 / box.width                                  # one word: any scale
    middle = (low + high) / 2
    ax.set_xlim(middle[0] - scale * box.width / 2, middle[0] + scale * box.width / 2)
    ax.set_ylim(middle[1] - scale * box.height / 2, middle[1] + scale * box.height / 2)

    to_pixels = ax.transData
    anchors = to_pixels.transform(xy)
    labels = [ax.text(x, y, word, ha="center", va="center", fontsize=size,
                      # ".", ",", ";" are a few pixels: bold, to be told apart
                      fontweight="normal" if any(c.isalnum() for c in word) else "bold")
              for (x, y), word in zip(xy, words)]
    extents = [label.get_window_extent(renderer) for label in labels]
    sizes = np.array([(e.width, e.height) for e in extents])
    # where each label's box centre is, relative to its anchor (a font's descent)
    shifts = np.array([((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2) for e in extents]) - anchors
    centres = place_labels(anchors, sizes, (box.x0, box.y0, box.x1, box.y1))
    # moved off its point: a dot at the point, a line to the label
    moved = np.any(np.abs(centres - anchors) > sizes / 2, axis=1)
    back = to_pixels.inverted()
    for label, centre, shift in zip(labels, centres, shifts):
        label.set_position(back.transform(centre - shift))
    # one artist for all the lines and one for all the dots: 2 x 200 artists of their
    # own cost the painter 0.15 s of the map's 1 s, for the same pixels
    ends = np.clip(anchors, centres - sizes / 2, centres + sizes / 2)[moved]
    lines = np.stack([xy[moved], back.transform(ends)], axis=1) if moved.any() else []
    ax.add_collection(LineCollection(lines, colors="0.65", linewidths=0.6, zorder=1),
                      autolim=False)
    ax.plot(*xy[moved].T, ".", ms=3, color="0.45", zorder=1)
    return labels, anchors


def place_labels(anchors: np.ndarray, sizes: np.ndarray, area: tuple) -> np.ndarray:
    """Centres (pixels) for labels of ``sizes`` (width, height) meant for ``anchors``,
    so that no two labels' boxes overlap, none covers another word's point, and all
    lie inside ``area`` (x0, y0, x1, y1).

    Greedy, one label at a time: among positions on a 2-pixel grid around its
    anchor, nearest first, the first free one (its own point first of all).  It
    places a label wherever the area has room for it; only in an area too full
    for that would it leave a label on its point, overlapping (the tests would fail).

    Libraries were tried on the published model's map: adjustText 1.4 pushes
    labels apart until a step budget runs out and left 95 overlapping pairs (3 s);
    textalloc 1.2.4 searches candidates as this does but draws what it cannot
    place over the others (or drops it) and left 4 (2.5 s).  This takes 0.4 s.
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


NEAREST = 8                     # the words the page lights up around the one pointed at


def map_page(fig, labels, anchors: np.ndarray, W1: np.ndarray, title: str) -> str:
    """The map as a self-contained HTML page (inline SVG and script, nothing fetched):
    the words where the PNG has them; pointing at one lights up its ``NEAREST``
    nearest words by Euclidean distance between columns of W1, and lists them."""
    renderer = canvas(fig).get_renderer()
    height = fig.bbox.height                            # SVG's y runs down, the figure's up
    x0, y0, x1, y1 = fig.axes[0].get_window_extent(renderer).extents
    E = np.asarray(W1.T, np.float64)
    distance = np.linalg.norm(E[:, None] - E[None], axis=2)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, 1:NEAREST + 1]
    size = LABEL_SIZE * fig.dpi / 72
    texts, leaders = [], []
    for label, (px, py) in zip(labels, anchors):
        e = label.get_window_extent(renderer)
        cx, cy = (e.x0 + e.x1) / 2, height - (e.y0 + e.y1) / 2
        bold = ' font-weight="bold"' if label.get_fontweight() == "bold" else ""
        texts.append(f'<text x="{cx:.1f}" y="{cy:.1f}"{bold}>{escape(label.get_text())}</text>')
        if not (e.x0 <= px <= e.x1 and e.y0 <= py <= e.y1):    # moved: a line to its point
            end = np.clip([px, py], [e.x0, e.y0], [e.x1, e.y1])
            leaders.append(f'<path d="M{px:.1f},{height - py:.1f}L{end[0]:.1f},'
                           f'{height - end[1]:.1f}"/><circle cx="{px:.1f}" '
                           f'cy="{height - py:.1f}" r="1.5"/>')
    near = [[[int(j), round(float(distance[i, j]), 2)] for j in row]
            for i, row in enumerate(nearest)]
    return _PAGE.format(
        title=escape(title or "Word embeddings"), size=f"{size:.1f}", view=(
            f"{x0:.0f} {height - y1:.0f} {x1 - x0:.0f} {y1 - y0:.0f}"),
        width=f"{x1 - x0:.0f}", texts="\n".join(texts), leaders="".join(leaders),
        near=json.dumps(near, separators=(",", ":")), k=NEAREST,
        perplexity=f"{perplexity(len(labels)):.3g}")


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px sans-serif; margin: 1em; color: #222 }}
h1 {{ font-size: 20px; margin: 0 }}
#info {{ min-height: 2.6em; margin: .4em 0 }}
svg {{ max-width: 100%; height: auto; border: 1px solid #ccc }}
#words text {{ font-size: {size}px; font-family: "DejaVu Sans", Verdana, sans-serif;
              text-anchor: middle; dominant-baseline: central; cursor: default }}
#words text.word {{ fill: #1a4d9c; font-weight: bold }}
#words text.near {{ fill: #c0392b; font-weight: bold }}
#leaders {{ stroke: #aaa; stroke-width: .6; fill: #777 }}
#links {{ stroke: #c0392b; stroke-width: 1; opacity: .5 }}
</style></head><body>
<h1>{title}</h1>
<p>The words' embeddings (columns of W1) by t-SNE, perplexity {perplexity}.</p>
<p id="info">Point at a word: its {k} nearest words in the embedding space light up.</p>
<svg viewBox="{view}" width="{width}" xmlns="http://www.w3.org/2000/svg">
<g id="leaders">{leaders}</g><g id="links"></g>
<g id="words">
{texts}
</g></svg>
<script>
const near = {near};   // for each word: [index, distance] of its nearest words
const words = document.querySelectorAll("#words text");
const links = document.getElementById("links"), info = document.getElementById("info");
const hint = info.textContent;
const centre = t => [t.getAttribute("x"), t.getAttribute("y")];
function show(i) {{
  words.forEach(t => t.removeAttribute("class"));
  links.replaceChildren();
  if (i < 0) {{ info.textContent = hint; return; }}
  words[i].setAttribute("class", "word");
  for (const [j] of near[i]) {{
    words[j].setAttribute("class", "near");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
    const [x1, y1] = centre(words[i]), [x2, y2] = centre(words[j]);
    Object.entries({{x1, y1, x2, y2}}).forEach(([k, v]) => line.setAttribute(k, v));
    links.append(line);
  }}
  info.textContent = words[i].textContent + ", nearest: " +
    near[i].map(([j, d]) => words[j].textContent + " (" + d + ")").join(", ");
}}
words.forEach((t, i) => {{
  t.addEventListener("mouseenter", () => show(i));
  t.addEventListener("mouseleave", () => show(-1));
}});
</script></body></html>
"""
