"""The Agg canvas: a figure without pyplot, and its PNG written atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from wordnet.fileio import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def canvas(fig: Figure):
    """The figure's Agg canvas, made once: its one renderer serves every measure of the
    figure and its drawing, and matplotlib keeps the sizes of texts per renderer (a map's
    250 labels measured for their places, then drawn, then placed in its HTML page)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    return fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)


def save(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    canvas(fig).print_png(buffer)
    atomic_write(Path(path), buffer.getvalue())
