"""Metrics batched off the training thread.

One MLflow call per training iteration would cost more than the training
itself (3,000 calls take about 10 s here).  The training thread only puts
each point in a queue (under a microsecond); a worker thread sends them with
``log_batch``, up to 1,000 a call, no point waiting more than a second.
"""
from __future__ import annotations

import queue
import threading
import time

from wordnet.tracking.errors import TrackingError

MAX_BATCH = 1000            # metrics per log_batch call: MLflow's limit per request
FLUSH_INTERVAL = 1.0        # seconds a point may wait in the queue


class MetricQueue:
    """(key, value, step) points, logged in batches by a worker thread.

    ``send`` receives lists of ``(key, value, timestamp_ms, step)``.  The first
    error in the worker goes to ``on_error`` at once, and is raised, once, by the
    next :meth:`flush` or :meth:`close`; the points after it are dropped rather
    than retried.
    """

    _STOP = object()

    def __init__(self, send, max_batch: int = MAX_BATCH, interval: float = FLUSH_INTERVAL,
                 on_error=None):
        self._send, self._max_batch, self._interval = send, max_batch, interval
        self._on_error = on_error
        self._queue = queue.SimpleQueue()
        self._error: Exception | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._work, name="wordnet-metrics", daemon=True)
        self._thread.start()

    def put(self, key: str, value: float, step: int, link=(None, None, None)) -> None:
        """A point; ``link``: the (model ID, dataset name, dataset digest) it is about."""
        self._queue.put((key, float(value), int(time.time() * 1000), int(step), *link))

    def flush(self) -> None:
        """Return once every point put so far is logged."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        self._raise()

    def _raise(self):
        if self._error is not None and not self._reported:
            self._reported = True
            raise TrackingError(f"logging metrics failed: {self._error}") from self._error

    def _work(self):
        pending, deadline = [], 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None                                   # the interval is over
            if isinstance(item, tuple):
                if not pending:
                    deadline = time.monotonic() + self._interval
                pending.append(item)
                if len(pending) < self._max_batch:
                    continue
            if pending:
                self._deliver(pending)
                pending = []
            if isinstance(item, threading.Event):
                item.set()
            elif item is self._STOP:
                return

    def _deliver(self, points):
        if self._error is not None:
            return
        try:
            self._send(points)
        except Exception as e:                                 # kept for the main thread
            self._error = e
            if self._on_error is not None:
                self._on_error(e)
