"""The tracking's errors, and MLflow's errors told in one line."""
from __future__ import annotations

from wordnet.errors import WordNetError


class TrackingError(WordNetError):
    """The tracking server cannot be reached or refused a request."""


def first_line(e: Exception) -> str:
    """An error's message in one line, for a user (MLflow's run to pages)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def short(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters: MLflow's HTTP errors run to several hundred."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
