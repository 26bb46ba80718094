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


def save(fig: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write(Path(path), buffer.getvalue())
