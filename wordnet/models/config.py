"""The recipe keys every model has: how it is trained (``TrainingConfig``: the schedule
and the optimiser) and what every network here is made of (``Config``: its kind, its
embeddings, numerics and initial weights).  Each model kind adds its own keys in a
subclass beside its mathematics (``FourGramConfig`` in :mod:`wordnet.models.fourgram`,
...), so that a run logs, and ``--set`` accepts, only the keys of its model.  The
defaults are the C reference's recipe (SPEC sections 1, 3 and 4).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import ClassVar

from wordnet.errors import ConfigError
from wordnet.models import init as init_schemes
from wordnet.models.base import INT_MAX, check_backend


def check_types(config) -> None:
    """ConfigError unless every field of ``config`` holds a value of its declared type
    (a float field takes an int; no field takes a bool for a number)."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value, want = getattr(config, f.name), hints[f.name]
        accepted = tuple(t for t in typing.get_args(want) or (want,) if t is not type(None))
        if float in accepted:
            accepted += (int,)
        if value is None and type(None) in typing.get_args(want):
            continue
        if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
            raise ConfigError(f"{f.name} must be {_spelled(want)}, got {value!r}")


def _spelled(t) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained: the schedule and the optimiser (SPEC section 3)."""
    batch_size: int = 100                  # N
    epochs: int = 9
    early_stop: int = 3000                 # minibatch of the last epoch ending it (or beyond: all)
    learning_rate: float = 0.1
    momentum: float = 0.9
    validation_period: int = INT_MAX       # validate after minibatches b > 0, b % period == 0
    checkpoint_minutes: float = 2.0        # save what resuming needs this often (SIGKILL)
    weight_decay: float = 0.0              # λ of an L2 penalty on the weights (models.base)
    lr_schedule: str = "constant"          # "linear": word2vec's SGD, the rate falling to 0

    def __post_init__(self):
        check_types(self)
        for name in ("batch_size", "epochs", "validation_period"):
            if not 1 <= getattr(self, name) <= INT_MAX:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.early_stop <= INT_MAX:
            raise ConfigError(f"early_stop must be 0 or more, got {self.early_stop}")
        if not (0.0 < self.learning_rate < float("inf")):
            raise ConfigError(f"learning_rate must be positive and finite, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.weight_decay < float("inf"):
            raise ConfigError(f"weight_decay must be 0 or more and finite, got {self.weight_decay}")
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.lr_schedule == "linear" and self.momentum != 0.0:
            raise ConfigError(f"lr_schedule = linear is word2vec's SGD, without momentum: "
                              f"set momentum = 0 (got {self.momentum})")
        if not (0.0 < self.checkpoint_minutes < float("inf")):
            raise ConfigError(f"checkpoint_minutes must be positive and finite, "
                              f"got {self.checkpoint_minutes}")

    def updates(self, train_rows: int) -> int:
        """How many minibatch updates a whole run on ``train_rows`` rows applies."""
        M = train_rows // self.batch_size
        return (self.epochs - 1) * M + min(self.early_stop, M)

    def rate(self, done: float, total: float) -> float:
        """The learning rate of the update after ``done`` of a run's ``total`` examples
        (or minibatches): ``learning_rate``, or with ``lr_schedule = "linear"``
        learning_rate · max(LINEAR_FLOOR, 1 - done / total)."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return self.learning_rate * max(LINEAR_FLOOR, 1.0 - done / total)

    def iterations(self, train_rows: int) -> int:
        """How many training CEs a run on ``train_rows`` rows reports (SPEC section 3)."""
        M = train_rows // self.batch_size
        return (self.epochs - 1) * M + min(self.early_stop + 1, M)


@dataclass(frozen=True)
class Config(TrainingConfig):
    """A recipe's keys common to every model: its training's, then the network's kind,
    embeddings, numerics and initial weights.  A kind's keys extend it."""
    kind: ClassVar[str] = ""               # the model kind whose keys these are
    model: str = "4gram"                   # the kind (wordnet.models.registry)
    embedding_size: int = 50               # h1, or d
    backend: str = "exact"
    dtype: str = "float64"                 # float32: fast backend only
    init: str = "c-reference"
    seed: int = 0                          # for init "gaussian", and a run's random words
    init_embeddings: str = ""              # W1 from this model (what --model takes), not init

    def __post_init__(self):
        super().__post_init__()
        if self.kind and self.model != self.kind:
            raise ConfigError(f"model is {self.kind!r} in a {type(self).__name__}, "
                              f"got {self.model!r}")
        if not 1 <= self.embedding_size <= INT_MAX:
            raise ConfigError(f"embedding_size must be a positive integer, "
                              f"got {self.embedding_size}")
        check_backend(self.backend, self.dtype)
        if self.seed < 0:
            raise ConfigError(f"seed must be 0 or more, got {self.seed}")
        if self.init not in init_schemes.SCHEMES:
            raise ConfigError(f"init must be one of {', '.join(init_schemes.SCHEMES)}, "
                              f"got {self.init!r}")

    @property
    def experiment(self) -> str:
        """The MLflow experiment its runs go to unless told otherwise: one per kind of
        model and loss, so that a metric's name means one quantity in an experiment."""
        return f"wordnet-{self.model}"

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def objective(self) -> str:
        """What the training minimises, in words, when the kind's name does not say it
        (a kind's keys that choose it: skip-gram's ``negatives``)."""
        return ""


# The learning rate through a run: "constant", or "linear", word2vec's: plain SGD (no
# momentum) whose rate falls linearly from learning_rate, at the first example, to
# learning_rate · LINEAR_FLOOR at the last (wordnet.training.sampled).
LR_SCHEDULES = ("constant", "linear")
LINEAR_FLOOR = 1e-4


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


ACTIVATIONS = ("sigmoid", "tanh")             # of a hidden layer


def check_hidden_layer(config) -> None:
    """A configuration's hidden layer: its size and activation (4-gram, window scorer)."""
    if not 1 <= config.hidden_size <= INT_MAX:
        raise ConfigError(f"hidden_size must be a positive integer, got {config.hidden_size}")
    check_choice("activation", config.activation, ACTIVATIONS)


def check_window(k: int) -> None:
    if not 1 <= k <= 10:
        raise ConfigError(f"window must be 1 to 10 words either side, got {k}")
