"""The tracking's errors, and MLflow's errors told in one line."""
from __future__ import annotations

from wordnet.errors import WordNetError


class TrackingError(WordNetError):
    """The tracking server cannot be reached or refused a request."""


AUTOFLUSH = "(raised as a result of"    # SQLAlchemy's wrapper of the error that matters


class ModelNameError(WordNetError):
    """A registered model's name MLflow would refuse: a usage error."""
    exit_code = 2


def check_model_name(name: str) -> str:
    """``name`` if MLflow's model registry takes it, checked before any work rather than
    refused after the training: not blank, no ``/`` or ``:`` (they separate the parts
    of ``models:/NAME/VERSION``), not ``.`` and not starting with ``..`` (MLflow refuses
    names that would resolve to another as a path), no control characters."""
    if not name.strip():
        problem = "is empty"
    elif "/" in name or ":" in name:
        problem = "has '/' or ':' (they separate the parts of models:/NAME/VERSION)"
    elif name == "." or name.startswith(".."):
        problem = "reads as a path ('.' or starting with '..')"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = "has a control character"
    else:
        return name
    raise ModelNameError(f"the registered model name {name!r} {problem}: choose another "
                         "--register NAME, or pass --no-register")


def first_line(e: Exception) -> str:
    """An error's message in one line, for a user (MLflow's run to pages).  SQLAlchemy's
    "(raised as a result of Query-invoked autoflush; ...)" is not the cause: the
    database's own error is ("attempt to write a readonly database", "database or disk
    is full")."""
    text = str(e).strip()
    if text.startswith(AUTOFLUSH):
        root = _database_error(e)
        if root is not None and str(root).strip():
            return str(root).strip().splitlines()[0]
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(AUTOFLUSH)]
    return lines[0] if lines else type(e).__name__


def _database_error(e: BaseException) -> BaseException | None:
    """The DB-API error (SQLAlchemy's ``orig``) under ``e``, through its causes."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        orig = getattr(e, "orig", None)
        if isinstance(orig, BaseException):
            return orig
        e = e.__cause__ or e.__context__
    return None


def short(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters: MLflow's HTTP errors run to several hundred."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
