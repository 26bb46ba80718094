"""wordnet.plots: the embedding map (t-SNE, every label legible) and the CE curves."""
import html
import itertools
import json
import math
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from wordnet import plots
from wordnet.data.dataset import Vocabulary
from wordnet.models import checkpoint
from wordnet.plots.embeddings import PERPLEXITY, perplexity


@pytest.fixture(scope="module")
def published():
    """(W1, words) of the published model9-3000.bin: a real embedding to lay out."""
    _, params = checkpoint.load_embedded("model9-3000.bin")
    return params["W1"], Vocabulary.embedded().words


def overlapping(boxes) -> list:
    """The pairs of boxes (x0, y0, x1, y1) whose interiors intersect."""
    return [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


# -- embedding map ------------------------------------------------------------------------

def test_every_word_is_drawn_and_no_label_overlaps_another(published):
    W1, words = published
    fig, labels, _ = plots.draw_embedding_map(W1, words, "a run · quick · fast")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()                                       # as saved: measure what was drawn
    renderer = canvas.get_renderer()
    assert [label.get_text() for label in labels] == list(words)
    boxes = [label.get_window_extent(renderer).extents for label in labels]
    assert overlapping(boxes) == []
    x0, y0, x1, y1 = fig.bbox.extents
    assert all(x0 <= b[0] and b[2] <= x1 and y0 <= b[1] and b[3] <= y1 for b in boxes)
    assert fig.get_suptitle() == "a run · quick · fast"


def test_maps_compared_are_two_to_a_row_as_wide_as_one_map(published):
    """Three maps: two across, one below, 1,200 pixels wide in all (side by side they
    were 3,000, which MLflow's viewer shrank past reading); every label of each map
    apart from the others and inside its own map."""
    W1, words = published
    fig, labels = plots.draw_embedding_maps([W1, W1[::-1], 2 * W1], ["a", "b", "c"], words)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    assert (fig.bbox.width, fig.bbox.height) == (1200, 1270)
    a, b, c = (ax.get_window_extent(renderer) for ax in fig.axes)
    assert a.y0 == b.y0 and a.x1 < b.x0 and c.x0 == a.x0 and c.y1 < a.y0   # a b / c
    assert 550 < a.width <= 600 and 550 < a.height <= 600
    for ax, drawn in zip(fig.axes, labels):
        assert [label.get_text() for label in drawn] == list(words)
        boxes = [label.get_window_extent(renderer).extents for label in drawn]
        assert overlapping(boxes) == []
        x0, y0, x1, y1 = ax.get_window_extent(renderer).extents
        assert all(x0 <= b[0] and b[2] <= x1 and y0 <= b[1] and b[3] <= y1 for b in boxes)


def test_the_map_is_the_same_for_the_same_embedding(published, tmp_path):
    W1, words = published
    plots.embedding_map(tmp_path / "a.png", W1, words, "t")
    plots.embedding_map(tmp_path / "b.png", W1.copy(), words, "t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_shows_the_map_and_each_words_nearest_words(published, tmp_path):
    W1, words = published
    plots.embedding_map(tmp_path / "map.png", W1, words, "<run> · quick · fast",
                        html=tmp_path / "map.html")
    page = (tmp_path / "map.html").read_text()
    assert "<title>&lt;run&gt; · quick · fast</title>" in page
    drawn = re.findall(r'<text x="[\d.]+" y="[\d.]+"[^>]*>([^<]*)</text>', page)
    assert [html.unescape(w) for w in drawn] == list(words)
    near = json.loads(re.search(r"const near = (.*?);", page)[1])
    she, he = near[words.index("she")], words.index("he")
    assert he in [j for j, _ in she]
    assert all(d1 <= d2 for (_, d1), (_, d2) in zip(she, she[1:]))     # nearest first
    assert not re.search(r'(src|href)="?https?:', page)               # nothing fetched


@pytest.mark.parametrize("n", [1, 2, 3, 24])
def test_a_small_vocabulary_is_mapped_too(tmp_path, n):
    """A user's text of a few dozen words: t-SNE's perplexity (30 for the course's 250
    words) must stay below the number of words; it is a third of the others, and the
    map says which; one word is drawn alone."""
    W1 = np.random.default_rng(n).normal(size=(50, n))
    words = [f"w{i}" for i in range(n)]
    fig, labels, _ = plots.draw_embedding_map(W1, words, "small")
    assert [label.get_text() for label in labels] == words
    assert fig.axes[0].get_title().endswith(f"perplexity {perplexity(n):.3g}")
    assert perplexity(n) < n and perplexity(250) == PERPLEXITY == 30
    plots.embedding_map(tmp_path / "map.png", W1, words, "small", html=tmp_path / "map.html")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tsne_keeps_neighbours_together(published):
    """The layout is of the embeddings: words the model uses alike end up side by side."""
    W1, words = published
    xy = plots.tsne(W1)
    assert xy.shape == (250, 2)
    index = {w: i for i, w in enumerate(words)}
    distance = lambda a, b: np.linalg.norm(xy[index[a]] - xy[index[b]])
    typical = np.median(np.linalg.norm(xy[:, None] - xy[None], axis=2))
    for a, b in (("he", "she"), ("could", "would"), ("four", "five")):
        assert distance(a, b) < typical / 4, (a, b)


def test_crowded_labels_are_placed_apart_inside_the_area():
    area = (0.0, 0.0, 400.0, 300.0)
    anchors = np.array([[50.0, 250.0], [5.0, 150.0]] + [[200.0, 150.0]] * 40)
    sizes = np.array([[40.0, 12.0], [30.0, 12.0]] + [[40.0, 12.0]] * 40)
    centres = plots.place_labels(anchors, sizes, area)
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2])
    assert overlapping(boxes) == []
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= [400, 300])
    assert np.array_equal(centres[0], anchors[0])       # alone: on its point
    assert np.allclose(centres[1], [18, 150], atol=2)   # at the edge: moved in, no further
    assert np.all(np.abs(centres[2:] - [200, 150]) < 100)   # the crowd: around its point
    # no label covers another word's point
    for i, (lo, hi) in enumerate(zip(boxes[:, :2], boxes[:, 2:])):
        others = np.delete(anchors, i, axis=0)
        assert not np.any(np.all((others > lo) & (others < hi), axis=1)), i


# -- CE curves ---------------------------------------------------------------------------

def curves(train_ce, valid_ce=(), batches_per_epoch=100, final_valid_ce=None, title="r · q · b"):
    fig = plots.draw_ce_curves(list(train_ce), list(valid_ce), batches_per_epoch, title,
                               final_valid_ce)
    FigureCanvasAgg(fig).draw()
    return fig, fig.axes[0]


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_runs_share_one_y_range_unless_one_goes_below_it():
    a = curves(np.linspace(5.5, 4.0, 300))[1].get_ylim()
    b = curves(np.linspace(5.6, 2.4, 900), [(450, 2.9)], final_valid_ce=2.618)[1].get_ylim()
    assert a == b == (plots.CE_BOTTOM, plots.CE_TOP)
    assert plots.CE_TOP > math.log(250)                 # the untrained start shows
    low = curves(np.linspace(5.5, 1.5, 300))[1].get_ylim()
    assert low[0] < 1.5 and low[1] == plots.CE_TOP


def test_the_final_validation_ce_is_marked_else_the_last_periodic_one():
    fig, _ = curves(np.linspace(5.5, 2.5, 900), [(300, 3.5), (600, 3.0)], final_valid_ce=2.61849)
    assert "valid CE 2.618" in texts(fig)
    assert fig.get_suptitle() == "r · q · b"
    fig, _ = curves(np.linspace(5.5, 2.5, 900), [(300, 3.5), (600, 3.0)])
    assert "valid CE 3.000" in texts(fig)
    fig, _ = curves(np.linspace(5.5, 2.5, 900))         # the reference recipe's train stage
    assert not any(t.startswith("valid CE") for t in texts(fig))


def test_epochs_are_marked():
    fig, ax = curves(np.linspace(5.5, 2.5, 950), batches_per_epoch=300)
    vertical = [line.get_xdata() for line in ax.lines if len(line.get_xdata()) == 2]
    assert [x[0] for x in vertical if x[0] == x[1]] == [300.5, 600.5, 900.5]
    (epochs,) = ax.child_axes
    assert epochs.get_xlabel() == "epoch"
    shown = [t for t in epochs.get_xticks() if 0 <= (t - 1) * 300 + 0.5 <= ax.get_xlim()[1]]
    assert shown == [1, 2, 3, 4]                        # epoch e begins at tick e
    fig, ax = curves(np.linspace(5.5, 4.5, 50), batches_per_epoch=300)   # one epoch, unfinished
    assert ax.child_axes == []


# -- drawing in another process -----------------------------------------------------------

def test_the_painter_draws_in_order_in_another_process(tmp_path, published):
    W1, words = published
    painter = plots.Painter()
    try:
        painter.draw(plots.ce_curves, tmp_path / "ce.png", [5.0, 4.0, 3.5], [(2, 4.2)], 2,
                     title="first")
        painter.draw(plots.embedding_map, tmp_path / "map.png", W1, words,
                     html=tmp_path / "map.html", also=[tmp_path / "map.html"])
        painter.draw(plots.ce_curves, tmp_path / "ce.png", [5.0, 4.0, 3.5], [(2, 4.2)], 2,
                     title="second", final_valid_ce=3.9)
        assert not (tmp_path / "map.png").exists()        # draw() did not wait for it
        drawn = painter.wait()
        assert drawn == [tmp_path / "ce.png", tmp_path / "map.png", tmp_path / "map.html",
                         tmp_path / "ce.png"]
        assert all(path.stat().st_size > 0 for path in drawn)
        assert painter.wait() == []                          # each file is returned once
        # the second CE plot, drawn after the first, is the one on disk
        again = tmp_path / "again.png"
        plots.ce_curves(again, [5.0, 4.0, 3.5], [(2, 4.2)], 2, title="second",
                        final_valid_ce=3.9)
        assert (tmp_path / "ce.png").read_bytes() == again.read_bytes()
    finally:
        painter.close()


def test_a_plot_that_fails_is_an_error_naming_it_and_the_painter_goes_on(tmp_path):
    painter = plots.Painter()
    try:
        painter.draw(plots.ce_curves, tmp_path / "no-such-folder" / "ce.png", [5.0], [], 1)
        with pytest.raises(plots.PlotError, match=r"cannot draw ce.png: .*no-such-folder"):
            painter.wait()
        painter.draw(plots.ce_curves, tmp_path / "ce.png", [5.0], [], 1)
        assert painter.wait() == [tmp_path / "ce.png"]
    finally:
        painter.close()


def test_a_painter_whose_process_died_says_so(tmp_path):
    painter = plots.Painter()
    painter.draw(plots.ce_curves, tmp_path / "ce.png", [5.0], [], 1)
    painter._process.kill()
    with pytest.raises(plots.PlotError, match="the drawing process ended"):
        painter.wait()
    painter.close()


def test_a_warmed_up_painter_has_its_libraries_loaded_before_the_first_plot(tmp_path):
    """warm_up imports what drawing needs (a run has it done while MLflow's store is
    reached, not after its training); wait() returns once it is done, with no file."""
    painter = plots.Painter()
    try:
        painter.warm_up()
        assert painter.wait() == []
        maps = f"/proc/{painter._process.pid}/maps"
        if not __import__("os").path.exists(maps):
            pytest.skip("no /proc here to see the process's libraries")
        loaded = open(maps).read()
        assert "/sklearn/" in loaded and "/matplotlib/" in loaded
        painter.draw(plots.ce_curves, tmp_path / "ce.png", [5.0, 4.0], [], 2)
        assert painter.wait() == [tmp_path / "ce.png"]
    finally:
        painter.close()
