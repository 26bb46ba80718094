"""Reports for a run: its cross-entropy curves (PNG) and a map of its word
embeddings (PNG, and an HTML page to explore).

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global
state) and written atomically.  matplotlib and scikit-learn are imported when a
figure is drawn: their imports take seconds, which the stages that draw nothing
(and `import wordnet.runs.pipeline`) need not pay.

Both figures take a ``title`` naming the run (its name, recipe and backend), so
that runs set side by side on MLflow's compare page can be told apart.
"""
from .ce import CE_BOTTOM, CE_TOP, UNIFORM_CE, ce_curves, draw_ce_curves
from .embeddings import (
           draw_embedding_map,
           draw_embedding_maps,
           embedding_map,
           embedding_maps,
           place_labels,
           tsne,
)
from .painter import Painter, PlotError

__all__ = ["CE_BOTTOM", "CE_TOP", "UNIFORM_CE", "Painter", "PlotError", "ce_curves", "draw_ce_curves",
           "draw_embedding_map", "draw_embedding_maps", "embedding_map", "embedding_maps", "place_labels", "tsne"]
