"""wordnet.progress: the training's progress line, its rate and its time left."""
import io
from types import SimpleNamespace

from wordnet.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def iteration(step, total, batches=100):
    return SimpleNamespace(step=step, epoch=(step - 1) // batches + 1,
                           batch=(step - 1) % batches + 1, batches=batches, train_ce=4.5)


def lines_of(total, start, rate, seconds, stream=None):
    """The lines of a run of ``total`` updates at ``rate`` a second, whose first update
    comes ``start`` seconds after the bar is made, followed for ``seconds``."""
    clock, stream = Clock(), stream or io.StringIO()
    bar = Progress(total, stream=stream, clock=clock)
    clock.now = start
    step = 0
    while step < total and clock.now <= start + seconds:
        step += 1
        bar.update(iteration(step, total))
        clock.now += 1 / rate
    bar.close()
    return stream.getvalue().splitlines()


def done_of(line):
    return int(line.split()[1].split("/")[0].replace(",", ""))


def eta_seconds(line):
    h, m, s = line.rsplit("ETA ", 1)[1].split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def test_the_time_left_waits_for_a_measured_rate_and_ignores_the_start():
    """A 3-minute run (18,000 updates at 100 a second) after 20 s of start: the first
    line said "ETA 00:35:59" when the rate came from the first update."""
    first, *later = lines_of(18_000, start=20.0, rate=100, seconds=30)
    assert first.endswith("ETA --:--:--") and "-- updates/s" in first
    assert len(later) >= 4
    for line in later:
        assert " 100 updates/s" in line or " 99 updates/s" in line, line
        assert abs(eta_seconds(line) - (18_000 - done_of(line)) / 100) <= 2, line


def test_the_rate_follows_the_last_window():
    """A run that slows down from 200 to 50 updates a second: the rate shown is the
    recent one, not the mean since the start."""
    clock, stream = Clock(), io.StringIO()
    total = 100_000
    bar = Progress(total, stream=stream, clock=clock)
    step = 0
    for rate, seconds in ((200, 60), (50, 120)):
        for _ in range(rate * seconds):
            step += 1
            bar.update(iteration(step, total))
            clock.now += 1 / rate
    last = stream.getvalue().splitlines()[-1]
    assert " 50 updates/s" in last, last
    assert abs(eta_seconds(last) - (total - done_of(last)) / 50) <= 2, last


def test_the_last_line_and_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    out = Terminal()
    lines_of(50, start=0.0, rate=10, seconds=60, stream=out)
    text = out.getvalue()
    assert text.startswith("\r[") and text.endswith("\n")
    assert "[########################] iteration 50/50" in text
    assert text.rstrip("\n").endswith("ETA 00:00:00\x1b[K")
