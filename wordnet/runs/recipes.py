"""Recipes: a run's hyperparameters from ``pipelines/*.toml`` and ``--set`` overrides.

A recipe file holds a ``description``, the hyperparameters under ``[config]``
and, under ``[reproduce]``, what the reproduce stage enforces for a model
trained by the recipe as written: ``enforce_statistical_parity`` (with
model9-3000.bin) and ``max_test_ce`` (a bound on its test CE).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

from wordnet.errors import ConfigError
from wordnet.fileio import MiB, read_bounded
from wordnet.models import registry
from wordnet.models.base import INT_MAX
from wordnet.models.config import Config


def make_config(values: dict) -> Config:
    """The configuration of the model kind ``values["model"]`` names (the 4-gram model
    without it), of ``values``; a key of another kind is refused: it would be ignored,
    yet name the run and count as a change of recipe."""
    kind = registry.kind(values.get("model", registry.DEFAULT))
    foreign = [key for key in values if key not in kind.config.keys()]
    if foreign:
        raise ConfigError(f"{', '.join(foreign)} does not apply to the {kind.name} model")
    return kind.config(**values)


RECIPE_LIMIT = MiB                      # bytes: a recipe is a few hundred
TOP_KEYS = ("description", "config", "reproduce")            # of a recipe file
REPRODUCE_KEYS = ("enforce_statistical_parity", "max_test_ce")  # of its [reproduce]
CONFIG_KEYS = registry.every_key()      # of every model kind
EXTRA_KEYS = ("reference_checkpoint",)       # a checkpoint `reproduce` compares byte for byte
KEYS = CONFIG_KEYS + EXTRA_KEYS
EVALUATION_KEYS = ("backend", "dtype") + EXTRA_KEYS   # they mean something without training
# What changes the numbers but not what is computed: a recipe's bounds still hold.
NUMERICS_KEYS = ("backend", "dtype")
KEEPING_KEYS = ("checkpoint_minutes",)      # how a run is kept, not what it computes
# How a run's name spells a hyperparameter, short, as a person would say it; in the
# order names list them, the most often varied first.
SHORT = {"learning_rate": "lr", "hidden_size": "h", "embedding_size": "d", "batch_size": "N",
         "momentum": "mom", "epochs": "epochs", "early_stop": "stop",
         "validation_period": "every", "init": "init", "seed": "seed", "activation": "act",
         "weight_decay": "wd", "lr_schedule": "sched", "init_embeddings": "W1", "window": "k",
         "negatives": "K",
         "corruption": "corrupt", "model": "model"}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    config: Config                           # with the overrides
    written: Config | None = None            # as the recipe file has it (None: the same)
    enforce_statistical_parity: bool = True
    max_test_ce: float | None = None
    reference_checkpoint: Path | None = None

    def changed(self) -> list[str]:
        """The training hyperparameters overridden (backend and dtype aside), as
        ``key=value (recipe: value)``."""
        return differences(self.config, self.written or self.config)

    def overridden(self) -> dict:
        """The hyperparameters that differ from the recipe as written, with their values."""
        written = self.written or self.config
        return {key: getattr(self.config, key) for key in self.config.keys()
                if getattr(self.config, key) != getattr(written, key, None)}

    def label(self, first=()) -> str:
        """A run's name that says what distinguishes it, shortest first: the overridden
        hyperparameters (those in ``first`` first, overridden or not: a sweep's varying
        ones), the recipe, the numerics (``lr=0.2 h=100 · quick · fast``,
        ``reference · exact``)."""
        shown = {key: getattr(self.config, key) for key in first} | self.overridden()
        order = [*first, *(key for key in SHORT if key not in first)]
        changed = [f"{SHORT[key]}={_short_value(key, shown[key])}" for key in order
                   if key in shown and key in SHORT]
        numerics = self.config.backend + (f" {self.config.dtype}" if self.config.dtype != "float64"
                                          else "")
        return " · ".join(([" ".join(changed)] if changed else []) + [self.name, numerics])

    def model_name(self, run_name: str | None = None) -> str:
        """The logged model's name in MLflow: the run's name, else what it is, as
        MLflow's names allow (a '.' is '_'; no '/', ':', quotes or '%'), so that each
        tells apart in the models list: ``lr=0_2-quick-fast``, ``wordnet-quick-fast``."""
        if not run_name:
            dtype = "-float32" if self.config.dtype == "float32" else ""
            run_name = f"wordnet-{self.name}-{self.config.backend}{dtype}"
        name = "".join(c if c.isalnum() or c in "-_=+#" else "_" if c == "." else " "
                       for c in run_name)
        return "-".join(name.split())

    def note(self, stages=("train",)) -> str:
        """The run's description, true of the run: the recipe's as written when the run
        trains by it; else said to be the recipe's, with what was overridden, or what the
        stages did with a model it trained (its description, such as "bit-exact with
        the C program", is the recipe's claim, not this run's)."""
        text = self.description or f"The {self.name} recipe."
        written = self.written or self.config
        overridden = [f"{key}={shown(key, value)} "
                      f"(recipe: {shown(key, getattr(written, key, None))})"
                      for key, value in self.overridden().items()]
        if "train" not in stages:
            text = (f"{', '.join(stages).capitalize()} of a model trained by the {self.name} "
                    f"recipe, whose description reads: {text}")
        elif overridden:
            text = f"The {self.name} recipe, whose description reads: {text}"
        if overridden:
            text += "\n\nOverridden: " + ", ".join(overridden) + "."
        return text

    def as_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "config": dataclasses.asdict(self.config),
                "written": dataclasses.asdict(self.written or self.config),
                "enforce_statistical_parity": self.enforce_statistical_parity,
                "max_test_ce": self.max_test_ce}

    @classmethod
    def from_json(cls, saved: dict) -> "Recipe":
        return cls(saved["name"], saved.get("description", ""), _saved(saved["config"]),
                   _saved(saved.get("written", saved["config"])),
                   saved["enforce_statistical_parity"], saved.get("max_test_ce"))


def _saved(values: dict) -> Config:
    """A configuration as recipe.json holds it; one written before each kind had its own
    keys holds every kind's, the others' at their defaults: those are left out."""
    kind = registry.kind(values.get("model", registry.DEFAULT))
    return make_config({key: value for key, value in values.items()
                        if key in kind.config.keys()})


def differences(config: Config, other: Config, label: str = "recipe") -> list[str]:
    """The hyperparameters of ``config`` that make it train another model than
    ``other`` (backend and dtype aside; the seed only with gaussian init)."""
    out = []
    for key in dict.fromkeys(config.keys() + other.keys()):
        mine, theirs = getattr(config, key, None), getattr(other, key, None)
        if key in NUMERICS_KEYS + KEEPING_KEYS or mine == theirs:
            continue
        if key == "seed" and config.init == other.init != "gaussian":
            continue
        out.append(f"{key}={shown(key, mine)} ({label}: {shown(key, theirs)})")
    return out


def recipe_names() -> list[str]:
    folder = importlib.resources.files("wordnet.pipelines")
    return sorted(Path(p.name).stem for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (``reference``, ``quick``) or from a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        source, name = path, path.stem
    elif name_or_path in recipe_names():
        source = importlib.resources.files("wordnet.pipelines") / f"{name_or_path}.toml"
        name = name_or_path
    else:
        raise ConfigError(f"unknown pipeline {name_or_path!r}: choose one of "
                          f"{', '.join(recipe_names())} or give a .toml file")
    try:
        if isinstance(source, Path):
            blob = read_bounded(source, RECIPE_LIMIT, "recipe", ConfigError)
        else:                                 # one shipped with the package
            blob = source.read_bytes()
        spec = tomllib.loads(blob.decode("utf-8-sig"))   # an editor's byte-order mark aside
    except FileNotFoundError as e:
        raise ConfigError(f"{source}: {e.strerror}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{source}: {getattr(e, 'strerror', None) or _one_line(e)}") from None
    return _recipe(spec, source, name)


def _recipe(spec: dict, source, name: str) -> Recipe:
    """The recipe of a TOML file's contents, every key and type checked."""
    _only(spec, TOP_KEYS, source, "at the top level")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be a string, got {description!r}")
    values, checks = spec.get("config", {}), spec.get("reproduce", {})
    for table, value in (("config", values), ("reproduce", checks)):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {table} must be a table ([{table}]), got {value!r}")
    unknown = set(values) - set(CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) in [config]: {', '.join(sorted(unknown))}")
    try:
        config = make_config(values)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:       # a value of the wrong type for its key
        raise ConfigError(f"{source}: [config]: {_one_line(e)}") from None
    _only(checks, REPRODUCE_KEYS, source, "in [reproduce]")
    parity = checks.get("enforce_statistical_parity", True)
    if not isinstance(parity, bool):
        raise ConfigError(f"{source}: [reproduce] enforce_statistical_parity must be true or "
                          f"false (a TOML boolean, unquoted), got {parity!r}")
    bound = checks.get("max_test_ce")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                              or not 0 < bound < float("inf")):
        raise ConfigError(f"{source}: [reproduce] max_test_ce must be a positive number, "
                          f"got {bound!r}")
    return Recipe(name, description, config, config, parity,
                  None if bound is None else float(bound))


def _only(table: dict, keys, source, where: str) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {where}: {', '.join(unknown)} "
                          f"(known: {', '.join(keys)})")


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def parse_overrides(pairs) -> dict[str, str]:
    """``["key=value", ...]`` as a dict; ConfigError for a malformed pair or unknown key."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        if key not in KEYS:
            raise ConfigError(f"--set {key}: unknown key; choose one of {', '.join(KEYS)}")
        out[key] = value.strip()
    return out


def with_overrides(recipe: Recipe, overrides: dict[str, str]) -> Recipe:
    """``recipe`` with the ``--set`` values, converted to each field's type and checked."""
    kind = registry.kind(overrides.get("model", recipe.config.model))
    values = dataclasses.asdict(recipe.config)
    if kind.config is not type(recipe.config):        # --set model=...: the keys both have
        defaults = type(recipe.config)()
        values = {key: value for key, value in values.items()
                  if key in kind.config.keys() or value != getattr(defaults, key)}
    hints = typing.get_type_hints(kind.config)
    changes = {key: _typed(key, text, hints.get(key, str)) for key, text in overrides.items()
               if key in CONFIG_KEYS}
    config = make_config(values | changes)
    reference = overrides.get("reference_checkpoint")
    if reference is not None and not Path(reference).is_file():
        raise ConfigError(f"reference_checkpoint: {reference}: no such file")
    return dataclasses.replace(
        recipe, config=config,
        written=recipe.written or recipe.config,
        reference_checkpoint=Path(reference) if reference else recipe.reference_checkpoint)


def _typed(key: str, text: str, type_: type):
    """``text`` (a --set value) as a value of ``type_``."""
    try:
        return type_(text)
    except ValueError:
        kind = {int: "an integer", float: "a number"}.get(type_, type_.__name__)
        raise ConfigError(f"{key}: {text!r} is not {kind}") from None


def shown(key: str, value) -> str:
    """A value as descriptions show it: the recipes' 2^31 - 1 by what it means."""
    if value == INT_MAX and key in ("early_stop", "validation_period"):
        return "epoch end" if key == "early_stop" else "never"
    return str(value)


def _short_value(key: str, value) -> str:
    """A value as a run's name shows it: a model's file or folder by its name alone."""
    return Path(str(value)).name if key == "init_embeddings" else str(value)
