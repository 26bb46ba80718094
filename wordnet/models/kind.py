"""What the rest of the package knows of a kind of model, declared once by its module.

A model kind is its mathematics (a :class:`wordnet.models.base.Layers` subclass), its
recipe keys (a configuration dataclass), the figures it reports, the file that holds it
in a run's folder, what it can be asked (next words, or its embeddings only), and the
stages that train and evaluate it in a run.  :mod:`wordnet.models.registry` lists them.

The figures: every model logs a training curve (the running mean of its loss at each
iteration) and a validation curve (at each validation point, and the validate stage's
figure on the final model at the last iteration); the validate stage's figure, at step
0, is the curve's name with ``final_``: ``valid/final_ce``.  A sweep ranks its trials by
it, lower first, and lists ``shown`` in its summary.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    train_curve: str
    valid_curve: str
    shown: tuple[str, ...]                  # a sweep's summary columns
    objective: str = "validation CE"        # what select_by is, in words
    loss_name: str = "loss"                 # what the training curve is, in the progress line
    batch_curve: str | None = None          # the minibatches' own losses, ten at a time

    @property
    def train_final(self) -> str:
        """The train stage's figure: the last point of the training curve."""
        return self.train_curve.removesuffix("_running_mean").replace("/", "/final_")

    @property
    def select_by(self) -> str:
        """The validate stage's figure: a sweep's objective (lower is better)."""
        return self.valid_curve.replace("/", "/final_")


@dataclass(frozen=True)
class ModelKind:
    name: str               # the recipes' `model` key
    model: type             # its parameters, forward and backward passes
    config: type            # its recipe keys, typed: what a run of it logs and checks
    figures: Figures
    checkpoint: str         # its file in a run's folder: model.bin (the C format) or model.npz
    stages: str             # "module:Class" of its stages in a run (wordnet.runs), imported
                            # when a run needs them: the models do not depend on the runs
    predicts: bool = False  # next words: `predict`, `generate` and the served pyfunc model
    resumes: bool = False   # an interrupted training goes on (`run --resume`)
    examples: str = "examples"   # what its training examples are, in words

    def describe(self, config=None) -> str:
        """The kind as ``info`` names it, with what ``config`` (its recipe keys, when
        known) trains it for: ``skipgram (negative sampling, 5 negatives)``."""
        objective = config.objective() if config is not None else ""
        return f"{self.name} ({objective})" if objective else self.name

    def run_stages(self) -> type:
        """The class of its stages in a run, which takes the run (a PipelineRun)."""
        module, _, name = self.stages.partition(":")
        return getattr(importlib.import_module(module), name)
