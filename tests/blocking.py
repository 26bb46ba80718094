"""Helpers of the tests of readers that must not block: a call bounded in time, and a
FIFO unblocked should a reader wait on it (a failing test must not hang the run)."""
import os
import threading


def unblocking(fifo):
    """Open ``fifo`` for writing without blocking, should a reader be waiting on it (a
    test that fails must not hang the run)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def within(seconds, call):
    """``call()``'s outcome (its result, or the exception it raised), which must come
    within ``seconds``."""
    outcome = []

    def target():
        try:
            outcome.append(call())
        except BaseException as e:              # noqa: BLE001 - handed to the test
            outcome.append(e)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still reading after {seconds} s"
    return outcome[0]
