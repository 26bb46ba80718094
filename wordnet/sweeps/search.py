"""A sweep's search: the space ``--set`` describes, the trials Optuna draws from it, and
which trials to stop early.

``--set key=a,b,c`` is an axis of a grid: one trial per combination.  A distribution,
``--set key=loguniform:LO:HI`` (or ``uniform:LO:HI``, ``int:LO:HI``, ``choice:a,b,c``),
makes a sampled search of ``--samples N`` trials, by Optuna's random or TPE
(model-based) sampler, reproducibly with ``--seed``; a grid's values are then choices.

Pruning: a trial reports its validation CE at each validation point, numbered 1, 2, ...
(the recipe's ``validation_period`` apart), and Optuna's pruner decides whether it goes
on: ``asha`` (asynchronous successive halving: rungs at validation points 1, 4, 16, ...;
a trial goes on from a rung when it is in the best quarter of those that reached it, or
the best of them while they are fewer than 4), ``median`` (stopped when its best CE so
far is worse than the median of the finished trials' at the same point, once 5 have
finished) or ``none``.  A stopped trial is told what the pruner decided, with the figures.
"""
from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from statistics import median

from wordnet.errors import ConfigError
from wordnet.runs.rundir import folder_name

KINDS = ("uniform", "loguniform", "int", "choice")
SAMPLERS = ("tpe", "random")
PRUNERS = ("asha", "median", "none")
ETA = 4                      # asha: a trial goes on from a rung when in the best 1/ETA there
RUNG = "completed_rung_"     # asha: Optuna notes a trial's value at rung r as this + r


@dataclass(frozen=True)
class Axis:
    """One ``--set`` key: a grid's values, or a distribution to sample from."""
    key: str
    kind: str                    # "grid" or one of KINDS
    values: tuple = ()           # grid and choice: the values, as given
    low: float = 0.0
    high: float = 0.0

    @classmethod
    def parse(cls, key: str, text: str) -> "Axis":
        kind, _, rest = text.partition(":")
        if kind.strip() not in KINDS:                          # a grid: a,b,c
            return cls(key, "grid", _values(key, text))
        kind = kind.strip()
        if kind == "choice":
            return cls(key, kind, _values(key, rest))
        low, _, high = rest.partition(":")
        try:
            bounds = (int(low), int(high)) if kind == "int" else (float(low), float(high))
        except ValueError:
            raise ConfigError(f"--set {key}={text}: give {kind}:LOW:HIGH with "
                              f"{'integers' if kind == 'int' else 'numbers'}") from None
        if not (math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]):
            raise ConfigError(f"--set {key}={text}: LOW must be below HIGH, both finite")
        if kind == "loguniform" and bounds[0] <= 0:
            raise ConfigError(f"--set {key}={text}: loguniform needs LOW > 0")
        return cls(key, kind, low=bounds[0], high=bounds[1])

    def distribution(self):
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )
        if self.kind in ("grid", "choice"):
            return CategoricalDistribution(self.values)
        if self.kind == "int":
            return IntDistribution(self.low, self.high)
        return FloatDistribution(self.low, self.high, log=self.kind == "loguniform")

    def text(self, value) -> str:
        """A sampled value as ``--set`` takes it (4 significant digits for a number)."""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    def param(self) -> str:
        """The axis as the sweep's MLflow parameter ``sweep.KEY`` has it."""
        return ",".join(self.values) if self.kind == "grid" else self.describe()

    def describe(self) -> str:
        if self.kind in ("grid", "choice"):
            return "{" + ", ".join(self.values) + "}"
        return f"{self.kind}({self.text(self.low)}, {self.text(self.high)})"


def _values(key: str, text: str) -> tuple:
    values = [v.strip() for v in text.split(",")]
    if not any(values):
        raise ConfigError(f"--set {key}: no values to sweep; give them as {key}=V1,V2,...")
    if not all(values):
        raise ConfigError(f"--set {key}={text}: an empty value between commas")
    return tuple(dict.fromkeys(values))


def parse_space(pairs) -> dict[str, Axis]:
    """``KEY=SPEC`` pairs as axes, in the order given; ConfigError for a malformed
    pair, an unknown key or a bad distribution."""
    from wordnet.runs.recipes import parse_overrides
    space = {key: Axis.parse(key, spec) for key, spec in parse_overrides(pairs).items()}
    model = space.get("model")
    if model is not None and (model.kind != "grid" or len(model.values) > 1):
        raise ConfigError("model cannot vary in a sweep: the models report different figures; "
                          "sweep one at a time (--pipeline window, skipgram, ...)")
    return space


@dataclass(frozen=True)
class Trial:
    number: int
    values: dict                 # key -> value, as --set takes it
    folder: str                  # its folder in the sweep's


class Search:
    """The trials of a sweep, handed out one at a time (thread-safe): a grid's
    combinations in order, or ``samples`` draws.  Pruning decisions and final values
    go to one Optuna study, which the sampler (TPE) and the pruner learn from."""

    def __init__(self, space: dict[str, Axis], samples: int | None = None,
                 sampler: str = "tpe", seed: int | None = None, prune: str = "none"):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampled = any(axis.kind != "grid" for axis in space.values())
        if sampled and samples is None:
            raise ConfigError("a distribution in --set needs --samples N (how many trials)")
        self.space, self.samples, self.prune, self.seed = space, samples, prune, seed
        self.sampler = sampler if samples is not None else "grid"
        self.distributions = {key: axis.distribution() for key, axis in space.items()}
        self.study = optuna.create_study(direction="minimize", sampler=self._sampler(seed),
                                         pruner=_pruner(prune))
        if samples is None:                                  # the grid, last key fastest
            self.planned = [dict(zip(space, values)) for values in
                            itertools.product(*(a.values for a in space.values()))]
        elif self.sampler == "random":                       # drawn now: the same every time
            draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            self.planned = [self._texts(draws.ask(self.distributions).params)
                            for _ in range(samples)]
        else:                                                # TPE draws each when asked
            self.planned = None
        self.total = len(self.planned) if self.planned is not None else samples
        self._lock = threading.Lock()
        self._trials, self._done, self._next = {}, [], 0
        self._last = {}                                      # number -> its last reported CE
        self._closed = False

    def _sampler(self, seed):
        import optuna
        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def _texts(self, params: dict) -> dict:
        return {key: self.space[key].text(params[key]) for key in self.space}

    def skip(self, values: dict, value: float | None, intermediate: dict[int, float],
             pruned: bool) -> None:
        """A trial an earlier sweep finished (``--resume``): the sampler and the pruner
        learn from it, and a grid or a random search does not run it again.  Replayed
        as it went (its validation points reported, the pruner asked at each), so that
        the pruner keeps what it notes of a trial, as it would have."""
        from optuna.trial import TrialState
        with self._lock:
            self.study.enqueue_trial({key: self._param(key, text) for key, text in values.items()})
            trial = self.study.ask(self.distributions)
            for point, ce in sorted(intermediate.items()):
                trial.report(ce, point)
                trial.should_prune()
            if pruned or value is None or not math.isfinite(value):
                self.study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            self._done.append(values)

    def _param(self, key: str, text: str):
        axis = self.space[key]
        if axis.kind in ("grid", "choice"):
            return text
        value = int(text) if axis.kind == "int" else float(text)
        return min(max(value, axis.low), axis.high)      # a 4-digit value at the edge

    def next(self) -> Trial | None:
        """The next trial to run, or None when there is none left."""
        with self._lock:
            if self._closed:
                return None
            if self.planned is not None:
                while self._next < len(self.planned) and self.planned[self._next] in self._done:
                    self._next += 1
                if self._next == len(self.planned):
                    return None
                values = self.planned[self._next]
                self.study.enqueue_trial({k: self._param(k, v) for k, v in values.items()})
            elif self._next + len(self._done) >= self.samples:
                return None
            trial = self.study.ask(self.distributions)
            values = values if self.planned is not None else self._texts(trial.params)
            self._next += 1
            self._trials[trial.number] = trial
        pairs = "-".join(f"{k}={v}" for k, v in values.items())
        folder = pairs if self.samples is None else f"trial-{trial.number:03d}-{pairs}"
        return Trial(trial.number, values, folder_name(folder))   # a value's / is no folder

    def report(self, number: int, point: int, valid_ce: float) -> str | None:
        """Trial ``number``'s validation CE at its validation point ``point`` (1, 2, ...):
        why it should stop, as the pruner decided it, or None when it goes on."""
        with self._lock:
            trial = self._trials[number]
            if not math.isfinite(valid_ce):
                return f"not finite ({valid_ce})" if self.prune != "none" else None
            self._last[number] = valid_ce
            trial.report(valid_ce, point)
            return self._why_pruned(number, point) if trial.should_prune() else None

    def _why_pruned(self, number: int, point: int) -> str:
        """What the pruner decided about trial ``number`` at ``point``, with its figures."""
        from optuna.trial import TrialState
        trials = self.study.get_trials(deepcopy=False)
        mine = next(t for t in trials if t.number == number)
        if self.prune == "asha":
            # the rung it was judged at: the last one the pruner noted its value at
            rung = max(int(key.rsplit("_", 1)[1]) for key in mine.system_attrs
                       if key.startswith(RUNG))
            competing = sorted(t.system_attrs[f"{RUNG}{rung}"] for t in trials
                               if f"{RUNG}{rung}" in t.system_attrs)
            n = len(competing)
            if n < ETA:                         # too few to take a share: the best goes on
                return (f"not the best of the {n} trials at rung {rung} (the best: "
                        f"{competing[0]:.4f})")
            return (f"not in the best 1/{ETA} of the {n} trials at rung {rung} (the cut: "
                    f"{competing[n // ETA - 1]:.4f})")
        finished = [t.intermediate_values[point] for t in trials
                    if t.state == TrialState.COMPLETE and point in t.intermediate_values]
        best = min(mine.intermediate_values.values())
        return (f"its best so far, {best:.4f}, worse than the median {median(finished):.4f} "
                f"of the {len(finished)} finished trials at that point")

    def finish(self, number: int, status: str, valid_ce: float | None) -> None:
        """Trial ``number`` ended (FINISHED, PRUNED, FAILED, KILLED) with ``valid_ce``
        (None: its last validation point's)."""
        from optuna.trial import TrialState
        with self._lock:
            trial = self._trials.pop(number)
            last = self._last.pop(number, None)
            valid_ce = valid_ce if valid_ce is not None else last
            if status == "PRUNED":
                self.study.tell(trial, state=TrialState.PRUNED)
            elif status == "FINISHED" and valid_ce is not None and math.isfinite(valid_ce):
                self.study.tell(trial, valid_ce)
            else:
                self.study.tell(trial, state=TrialState.FAIL)

    def close(self) -> None:
        """No trial after this one (Ctrl-C)."""
        with self._lock:
            self._closed = True

    def params(self) -> dict[str, str]:
        """The sweep's MLflow parameters: ``sweep.KEY`` for every axis."""
        return {f"sweep.{key}": axis.param() for key, axis in self.space.items()}

    def describe(self) -> str:
        over = " × ".join(f"{key} ∈ {axis.describe()}" for key, axis in self.space.items())
        if self.samples is None:
            return over
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"{over}, {self.samples} {self.sampler} samples{seed}"


def _pruner(name: str):
    import optuna
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA)
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--prune {name}: choose one of {', '.join(PRUNERS)}")
