"""What each model reports, by the names metrics.json and MLflow give its figures.

Every model logs a training curve (the running mean of its loss at each iteration)
and a validation curve (at each validation point, and the validate stage's figure
on the final model at the last iteration); the validate stage's figure, at step 0,
is the curve's name with ``final_``: ``valid/final_ce``.  A sweep ranks its trials
by it, lower first, and lists ``shown`` in its summary.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    train_curve: str
    valid_curve: str
    shown: tuple[str, ...]                  # a sweep's summary columns
    objective: str = "validation CE"        # what select_by is, in words

    @property
    def select_by(self) -> str:
        """The validate stage's figure: a sweep's objective (lower is better)."""
        return self.valid_curve.replace("/", "/final_")


FIGURES = {
    "4gram": Figures("train/ce_running_mean", "valid/ce",
                     ("valid/final_ce", "test/ce", "valid/top1", "train/final_ce",
                      "perf/updates_per_second")),
    "window": Figures("train/loss_running_mean", "valid/loss",
                      ("valid/final_loss", "test/ranking_accuracy", "test/mean_margin",
                       "train/final_loss", "perf/updates_per_second"), "validation hinge loss"),
    "skipgram": Figures("train/loss_running_mean", "valid/ce",
                        ("valid/final_ce", "test/log_likelihood", "train/final_loss",
                         "perf/updates_per_second")),
}
