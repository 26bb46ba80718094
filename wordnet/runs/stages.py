"""What the stages of every model kind share: their errors, the signals that stop a
training between minibatches, and what a training reports while it runs.

Each kind's stages (``ModelKind.stages``: :mod:`wordnet.runs.fourgram_stages`,
:mod:`wordnet.runs.sampled_stages`) are a class taking the run
(:class:`wordnet.runs.pipeline.PipelineRun`), with the methods ``train``, ``validate``,
``test`` and ``reproduce``; the run calls those its stages name, in that order.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from wordnet.errors import Terminated, WordNetError

BATCH_WINDOW = 10           # minibatches per point of a batch curve (train/batch_ce_mean10)


class PipelineError(WordNetError):
    """A stage cannot run (no model) or failed (divergence, failed checks)."""


class Pruned(PipelineError):
    """A sweep's pruner stopped the training (what it decided: the message)."""
    run_status = "KILLED"                   # MLflow's status for it (tag wordnet.pruned)


class NotLogged(PipelineError):
    """The stages ran, but the tracking was lost on the way (the folder has it all)."""


class Reporter:
    """A training's callbacks: its curves to MLflow (the kind's figures), the progress
    bar, and at each validation point a sweep's judge, which may stop it (pruned)."""

    def __init__(self, run, trainer, total: int, points: int = 0):
        self.run, self.trainer, self.total = run, trainer, total
        self.figures = run.kind.figures
        self.bar = run.progress(total, loss=self.figures.loss_name) if run.progress else None
        self.window = []                    # minibatch losses since the last batch-curve point
        self.points = points                # validation points so far
        self.epochs, self.epochs_logged = [], 0     # (step, epoch) of each epoch's start
        self.pruned = None                  # (point, iteration, value, why) when the judge stopped it

    def on_iteration(self, it) -> None:
        tracked, figures = self.run.tracked, self.figures
        # the C program's report, a running mean reset at each epoch
        tracked.log_metric(figures.train_curve, it.train_ce, it.step)
        if figures.batch_curve:
            # comparable with the validation curve, the minibatches' own losses, a mean of
            # BATCH_WINDOW each: one point per minibatch would double what MLflow stores
            self.window.append(it.batch_ce)
            if len(self.window) == BATCH_WINDOW or it.step == self.total:
                tracked.log_metric(figures.batch_curve, sum(self.window) / len(self.window),
                                   it.step)
                self.window.clear()
        if it.batch == 1:                   # logged from the second on: one epoch is one dot
            self.epochs.append((it.step, it.epoch))
            if len(self.epochs) >= 2:
                for step, epoch in self.epochs[self.epochs_logged:]:
                    tracked.log_metric("train/epoch", epoch, step)
                self.epochs_logged = len(self.epochs)
        if self.bar:
            self.bar.update(it)

    def on_validation(self, step: int, value: float) -> None:
        self.run.valid_point(step, value)
        self.points += 1
        judge = self.run.judge
        why = judge(self.points, value) if judge is not None else None
        if why and self.pruned is None:
            self.pruned = (self.points, step, value, why)
            self.trainer.request_stop()

    def close(self) -> None:
        if self.bar:
            self.bar.close()

    def raise_pruned(self) -> None:
        """Pruned, the MLflow run tagged with why, when the judge stopped the training."""
        if self.pruned is None:
            return
        point, step, value, decided = self.pruned
        why = (f"validation point {point} (iteration {step}): {self.figures.objective} "
               f"{value:.4f}, {decided}")
        self.run.log_valid_curve()
        self.run.tracked.set_tags({"wordnet.pruned": why})
        raise Pruned(f"pruned at {why}")


class Ahead:
    """Jobs run one after the other on a thread of their own, started now; each one's
    result taken later, by name (:meth:`take`: waits for it, raises its exception).
    For work that holds no GIL (the kernels), done while the caller runs Python."""

    def __init__(self, jobs: dict):
        self._jobs, self._done = jobs, {name: threading.Event() for name in jobs}
        self._results: dict = {}
        threading.Thread(target=self._run, name="wordnet-ahead", daemon=True).start()

    def _run(self) -> None:
        for name, job in self._jobs.items():
            try:
                self._results[name] = (job(), None)
            except BaseException as e:              # raised by take(), in the caller
                self._results[name] = (None, e)
            self._done[name].set()

    def take(self, name: str, default=None):
        """Job ``name``'s result, once done (``default`` if there is no such job)."""
        if name not in self._done:
            return default
        self._done[name].wait()
        result, error = self._results.pop(name)
        del self._done[name]
        if error is not None:
            raise error
        return result


class Signals:
    """The signal that asked a training to stop, if any."""

    def __init__(self):
        self.received = None

    def interruption(self) -> KeyboardInterrupt:
        """What a training stopped by it raises: :class:`Terminated` for SIGTERM (exit
        status 143), else KeyboardInterrupt (Ctrl-C, 130)."""
        return Terminated() if self.received == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def stop_on_signals(stop):
    """SIGINT and SIGTERM call ``stop()``, so that training ends between minibatches
    and its state can be saved; a second signal acts as it would have.  Yields
    :class:`Signals`: which one came."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        signal.signal(signum, previous[signum])
        signals.received = signals.received or signum
        stop()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield signals
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
