"""How many threads to train on: as many as pay now, found by timing the training.

On a quiet machine two threads train faster than one.  When another process holds a
core, they can train several times slower than one alone: the threads meet at a
barrier at every minibatch, and a thread the system has descheduled for a time slice
(milliseconds) keeps its partner waiting.  How much depends on the machine, the model
and the load, so a model whose threads nobody fixed (``Layers.adaptive``) trains on
the number the governor measures to be fastest:

* it times each candidate (``threads``, half of it, ..., 1) on the training itself
  for ``TRIAL`` seconds, and keeps the fastest (the fewer threads, within ``TIE``),
  each at the faster of its last two windows: a burst of other work that takes a core
  for a window (the run's own calls to MLflow, 10 ms ten times a second) slows two
  threads more than one, and decided for one thread for seconds of a tracked run;
  a process that holds a core slows both windows;
* it goes on timing its choice, and tries the others again after ``HOLD`` seconds,
  waiting twice as long each time the choice holds (at most ``LONGEST_HOLD``), back to
  ``HOLD`` when it changes;
* it tries them again at once when its choice, if not already one thread, slows below
  ``SLOWED`` of the rate it was chosen at, two windows in a row (another process
  started).

The first call on other workers is not timed: their threads wake, and a core that
sat out (or ran other work: a tracked run's MLflow calls) fetches the weights into
its caches.  In a tracked run, two threads' trials, that call included, timed 25-38 %
below two threads chosen, and the run trained mostly on one thread.
A trial of a candidate that was far slower last time is shorter (its rate is known
within a call or two), and trials grow rarer while the choice holds: a run pays a few
per cent for following the machine.
The exact backend's results are the same on any number of threads; the fast
backend's differ in their last bits (BLAS's sums), so a run that must repeat bit for
bit fixes its threads (``threads=``, $WORDNET_THREADS), and then nothing changes them.
"""
from __future__ import annotations

TRIAL = 0.05          # seconds of training that measure one candidate
HOLD = 0.5            # seconds on a choice before the first new trial
LONGEST_HOLD = 8.0    # the longest time between trials
SLOWED = 0.6          # the choice's rate falling below this share of its own: try again
TIE = 0.97            # fewer workers win when their rate is within this share of the best
TRIAL_MINIBATCHES = 16   # the most minibatches a call runs during a trial


class Governor:
    """The threads (``workers``) to run the next minibatches on, from 1 to ``most``.

    The trainer asks :attr:`workers` before a call, runs at most :meth:`minibatches`
    minibatches on them, and tells :meth:`ran` how many it ran and in how many seconds
    (the training alone: not validation, logging or callbacks).
    """

    def __init__(self, most: int, adaptive: bool = True):
        self.most = max(1, most)
        # e.g. 4, 2, 1; fixed threads: only those
        self.candidates = sorted({max(1, self.most >> k) for k in range(self.most.bit_length())}
                                 if adaptive else {self.most}, reverse=True)
        self.rates: dict[int, float] = {}               # updates a second, last measured
        self._previous: dict[int, float] = {}           # each one's window before
        self.seconds: dict[int, float] = {}             # training seconds on each candidate
        self.workers = self.most
        self.choice: int | None = None                  # the workers chosen, once trials end
        self.choices = 0                                # how many times it chose
        self._queue = list(self.candidates) if len(self.candidates) > 1 else []
        self._hold = HOLD
        self._held = 0.0
        self._chosen_rate = 0.0
        self._on: int | None = None                     # the workers of the last call
        self._count, self._seconds = 0, 0.0

    @classmethod
    def of(cls, model) -> "Governor":
        """The governor of ``model``'s threads: adaptive unless they were fixed."""
        return cls(model.threads, model.adaptive)

    @property
    def trying(self) -> bool:
        """Whether the current workers are on trial."""
        return bool(self._queue)

    def minibatches(self, most: int) -> int:
        """How many minibatches the next call may run: during a trial, about what the
        candidate ran in its window last time (at most TRIAL_MINIBATCHES, at least 1).
        A candidate never timed is guessed as fast as the fastest one timed: fewer
        threads are slower, and at a large vocabulary (40 minibatches a second) 16
        minibatches on one thread were 0.6 s of slow training for a 0.05 s trial."""
        if not self._queue:
            return most
        last = self.rates.get(self.workers) or max(self.rates.values(), default=None)
        guess = TRIAL_MINIBATCHES if last is None else round(last * self._window())
        return max(1, min(most, TRIAL_MINIBATCHES, guess))

    def ran(self, minibatches: int, seconds: float) -> None:
        """``minibatches`` trained on :attr:`workers` in ``seconds``."""
        self.seconds[self.workers] = self.seconds.get(self.workers, 0.0) + seconds
        if len(self.candidates) == 1 or minibatches <= 0:
            return
        if self.workers != self._on:        # their first call: not timed (see above)
            self._on = self.workers
            return
        self._count += minibatches
        self._seconds += seconds
        if self._seconds < self._window():
            return
        window, measured = self._seconds, self._count / self._seconds
        self._count, self._seconds = 0, 0.0
        # the faster of the candidate's last two windows: one that a short burst of other
        # work took a core from (the run's own call to MLflow) does not decide; a process
        # that holds a core slows both
        rate = max(measured, self._previous.get(self.workers, 0.0))
        self._previous[self.workers] = measured
        self.rates[self.workers] = rate
        if self._queue:                     # a trial ends
            self._queue.pop(0)
            if self._queue:
                self.workers = self._queue[0]
            else:
                self._choose()
            return
        self._held += window
        # a choice slowed by another process can only gain from fewer threads
        slowed = rate < SLOWED * self._chosen_rate and self.choice > min(self.candidates)
        if slowed or self._held >= self._hold:
            # the others on trial; the choice's rate is the window just measured
            self._queue = [c for c in self.candidates if c != self.choice]
            self.workers = self._queue[0]

    def _window(self) -> float:
        """Seconds of training that measure the current workers: TRIAL, shorter for a
        candidate on trial that was far slower than the choice last time (down to
        a tenth: a call or two then shows whether it still is)."""
        last, chosen = self.rates.get(self.workers), self.rates.get(self.choice)
        if not self._queue or last is None or not chosen:
            return TRIAL
        return TRIAL * min(1.0, max(0.1, last / chosen))

    def _choose(self) -> None:
        best = max(self.rates.values())
        choice = min(c for c, r in self.rates.items() if r >= TIE * best)
        # a choice that holds is tried less and less often
        self._hold = min(2 * self._hold, LONGEST_HOLD) if choice == self.choice else HOLD
        self.choice = self.workers = choice
        self.choices += 1
        self._chosen_rate = self.rates[choice]
        self._held = 0.0
