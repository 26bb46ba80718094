"""Training progress on stderr: a bar redrawn in place on a terminal, otherwise a line
every few seconds (logs stay readable), with the rate and the time left.

The rate is measured from the first minibatch on, over the last WINDOW seconds: the
start (threads, buffers, the first validation) and a resumed run's earlier updates
are not part of it; the time left shows as ``--:--:--`` until SETTLE seconds of
training have measured it (a rate taken from the first update made a 3-minute run
read "ETA 00:35:59").
"""
from __future__ import annotations

import sys
import time
from collections import deque


class Progress:
    """``update(it)`` after each training iteration ``it`` (its step, epoch, batch,
    batches and train_ce); ``close()`` at the end."""

    WIDTH = 24          # characters of the bar
    SETTLE = 3.0        # seconds of measured training before a time left is shown
    WINDOW = 30.0       # seconds the rate is measured over

    def __init__(self, total: int, loss: str = "CE", stream=None, clock=time.monotonic):
        self.total, self.loss = total, loss          # what it.train_ce is
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.interactive = self.stream.isatty()
        self.interval = 0.2 if self.interactive else 5.0
        self.next = clock() + self.interval
        self.samples: deque[tuple[float, int]] = deque()   # (time, step) the rate is read from

    def update(self, it) -> None:
        now = self.clock()
        if not self.samples:
            self.samples.append((now, it.step))      # the first minibatch done: from here
        if now < self.next and it.step < self.total:
            return
        self.next = now + self.interval
        rate, eta = self._estimate(now, it.step)
        speed = f"{rate:,.0f}" if rate is not None else "--"
        text = (f"iteration {it.step:,}/{self.total:,} (epoch {it.epoch}, minibatch "
                f"{it.batch:,}/{it.batches:,})  {speed} updates/s  {self.loss} "
                f"{it.train_ce:.4f}  ETA {eta}")
        if self.interactive:
            done = self.WIDTH * it.step // self.total
            self.stream.write(f"\r[{'#' * done}{'.' * (self.WIDTH - done)}] {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _estimate(self, now: float, step: int) -> tuple[float | None, str]:
        """(updates a second, or None before any is measured; the time left, HH:MM:SS)."""
        samples = self.samples
        while len(samples) > 1 and now - samples[1][0] >= self.WINDOW:
            samples.popleft()                        # keep one sample WINDOW old or older
        then, before = samples[0]
        span = now - then
        rate = (step - before) / span if span > 0 and step > before else None
        samples.append((now, step))
        if step >= self.total:
            return rate, "00:00:00"
        if rate is None or span < self.SETTLE:
            return rate, "--:--:--"
        minutes, seconds = divmod(round((self.total - step) / rate), 60)
        hours, minutes = divmod(minutes, 60)
        return rate, f"{hours:02d}:{minutes:02d}:{seconds:02d}"
