"""The one timing loop of the benchmarks, shared by bench.py and torch_peer.py.

It imports nothing of wordnet's, so that torch_peer.py stays free of it.
"""
import time


def run_for(step, seconds: float) -> float:
    """Call ``step()`` until ``seconds`` of wall time have passed; calls per second."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        step()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)
