"""Metrics batched off the training thread.

One MLflow call per training iteration would cost more than the training
itself (3,000 calls take about 10 s here).  The training thread only puts
each point in a queue (under a microsecond); a worker thread sends them with
``log_batch``, no point waiting more than a second.

The worker shares the cores with the training's threads, so it works in short
calls: it wakes when SEND_AT points wait (on a SQLite store a call of them is about
10 ms of a core) or when the oldest has waited the interval, not at every point, and
sends whole SEND_ATs.  It used to wake at every point (taking the GIL from the
training thread's callbacks a thousand times a second) and send 1,000 points a call
(0.1 s of a core): the thread governor (wordnet.training.threads), timing 0.05 s
windows, took such a call for another process holding a core and trained on one
thread for seconds.  Two epochs of the reference recipe, medians of 5 runs in turn:
8.3 s tracked that way, 7.4 s now, 6.2 s untracked.  A tracking server writes the
points on its own cores: a run logging to one sends MAX_BATCH points a call, as
before (start_run), in a tenth of the requests.
"""
from __future__ import annotations

import collections
import queue
import threading
import time

from wordnet.tracking.errors import TrackingError

MAX_BATCH = 1000            # metrics per log_batch call: MLflow's limit per request
SEND_AT = 100               # points that make a call (a SQLite store: 0.1 ms each)
FLUSH_INTERVAL = 1.0        # seconds a point may wait in the queue


class MetricQueue:
    """(key, value, step) points, logged in batches by a worker thread.

    ``send`` receives lists of ``(key, value, timestamp_ms, step)``.  The first
    error in the worker goes to ``on_error`` at once, and is raised, once, by the
    next :meth:`flush` or :meth:`close`; the points after it are dropped rather
    than retried.

    The worker wakes for a call, not for a point: at the first point of a batch,
    then when SEND_AT points wait or the interval is over.  Woken at every point, it
    took the GIL from the training thread's callbacks a thousand times a second.
    """

    _STOP = object()

    def __init__(self, send, max_batch: int = MAX_BATCH, interval: float = FLUSH_INTERVAL,
                 on_error=None, send_at: int = SEND_AT):
        self._send, self._max_batch, self._interval = send, max_batch, interval
        self._send_at = min(send_at, max_batch)
        self._on_error = on_error
        self._points = collections.deque()          # put by the training, taken by the worker
        self._requests = queue.SimpleQueue()        # flushes (their Event) and the stop
        self._wake = threading.Event()
        self._error: Exception | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._work, name="wordnet-metrics", daemon=True)
        self._thread.start()

    def put(self, key: str, value: float, step: int, link=(None, None, None)) -> None:
        """A point; ``link``: the (model ID, dataset name, dataset digest) it is about."""
        self._points.append((key, float(value), time.time(), int(step), *link))
        waiting = len(self._points)
        if waiting == 1 or waiting % self._send_at == 0:   # its interval starts; a call is due
            self._wake.set()

    def flush(self) -> None:
        """Return once every point put so far is logged."""
        done = threading.Event()
        self._request(done)
        done.wait()
        self._raise()

    def close(self) -> None:
        if self._thread.is_alive():
            self._request(self._STOP)
            self._thread.join()
        self._raise()

    def _request(self, request) -> None:
        self._requests.put(request)
        self._wake.set()

    def _raise(self):
        if self._error is not None and not self._reported:
            self._reported = True
            raise TrackingError(f"logging metrics failed: {self._error}") from self._error

    def _work(self):
        while True:
            self._wake.wait(self._due_in())
            self._wake.clear()
            # the requests counted first: every point put before one is then counted too
            requests = self._requests.qsize()
            waiting = len(self._points)
            if requests or self._interval_left() == 0.0:
                count = waiting                     # everything put before the requests
            else:
                count = waiting - waiting % self._send_at   # whole SEND_ATs, the rest waits
            while count > 0:
                take = min(count, self._max_batch)
                count -= take
                self._deliver([self._point(self._points.popleft()) for _ in range(take)])
            for _ in range(requests):               # a later one: the next turn (its wake)
                request = self._requests.get()
                if request is self._STOP:
                    return
                request.set()

    def _due_in(self) -> float | None:
        """Seconds until a call is due (0: now; None: nothing waits): at once for a
        request or SEND_AT points, else when the oldest point's interval is over."""
        if not self._requests.empty() or len(self._points) >= self._send_at:
            return 0.0
        return self._interval_left()

    def _interval_left(self) -> float | None:
        """Seconds until the oldest point has waited the interval (None: no point)."""
        if not self._points:
            return None
        return max(0.0, self._points[0][2] + self._interval - time.time())

    @staticmethod
    def _point(point: tuple) -> tuple:
        key, value, put_at, *rest = point
        return (key, value, int(put_at * 1000), *rest)      # MLflow's timestamps: ms

    def _deliver(self, points):
        if self._error is not None:
            return
        try:
            self._send(points)
        except Exception as e:                                 # kept for the main thread
            self._error = e
            if self._on_error is not None:
                self._on_error(e)
