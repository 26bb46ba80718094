"""The model kinds, registered once: what a recipe's ``model`` key may name.

Adding a model is a module beside these (its mathematics, its configuration, its
figures and files, its ``KIND``: :class:`wordnet.models.kind.ModelKind`), a line
here, and a recipe in ``pipelines/`` (docs/contributing.md walks through it).
"""
from __future__ import annotations

from wordnet.errors import ConfigError
from wordnet.models import fourgram, skipgram, window
from wordnet.models.kind import ModelKind

KINDS: dict[str, ModelKind] = {k.name: k for k in (
    fourgram.KIND,
    window.KIND,
    skipgram.KIND,
)}
DEFAULT = fourgram.KIND.name        # a recipe that names no model: the C reference's


def kind(name: str) -> ModelKind:
    """The kind called ``name``; ConfigError naming the kinds there are."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"model must be one of {', '.join(KINDS)}, got {name!r}") from None


def of(config) -> ModelKind:
    """The kind a configuration is of."""
    return kind(config.model)


def every_key() -> tuple[str, ...]:
    """The recipe keys of every kind, in the order of the kinds' configurations."""
    keys = {}
    for k in KINDS.values():
        keys |= dict.fromkeys(k.config.keys())
    return tuple(keys)


def checkpoint_kinds(suffix: str) -> dict[str, tuple[str, ...]]:
    """{kind: its parameters' names} of the kinds saved in files of this ``suffix``
    (".npz": the models the C format cannot hold)."""
    return {k.name: k.model.PARAMS for k in KINDS.values()
            if k.checkpoint.endswith(suffix)}


def predicting() -> tuple[str, ...]:
    """The kinds that predict next words."""
    return tuple(k.name for k in KINDS.values() if k.predicts)
