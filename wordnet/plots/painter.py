"""Drawing the plots in another process, while the run goes on.

The plots cost seconds of single-threaded Python (importing matplotlib and
scikit-learn, t-SNE, placing the labels).  On a thread they would hold the GIL
against what the run does meanwhile (evaluating, logging to MLflow) and gain
nothing; a process draws them on a core of its own.  It draws after training,
never during it: the training's threads have the cores to themselves.  A run may
start it earlier, to import its libraries while the run waits on something else
(:meth:`Painter.warm_up`, while MLflow's store is set up), and wait for that to end
before training.

The process is a Python running :func:`serve`, not multiprocessing's: a
spawned child would import the caller's main script again, and run it when it
lacks the ``if __name__ == "__main__"`` guard; a forked one would inherit the
training's OpenMP threads.  Jobs go through its stdin, pickled (a plot function,
by name, and its arguments); answers come back on its stdout, a line each: "ok",
or the error.
"""
from __future__ import annotations

import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

from wordnet.errors import WordNetError
from wordnet.processes import python_command

TIMEOUT = 300.0             # seconds a plot may take (the map takes about 5 s)
SERVE = "from wordnet.plots.painter import serve; serve()"


class PlotError(WordNetError):
    """A plot could not be drawn."""


class Painter:
    """``draw(plot, path, ...)`` returns at once; :meth:`wait` returns the files drawn,
    once written.  Plots are drawn one after the other, in the order given."""

    def __init__(self):
        self._process: subprocess.Popen | None = None
        self._drawing: list[list[Path]] = []          # the files of each job sent
        self._unread = b""                            # answers read, not yet taken

    def draw(self, plot, path: Path, *args, also=(), **kwargs) -> None:
        """``plot(path, *args, **kwargs)``, which writes ``path`` and the files ``also``."""
        self._send((plot, path, args, kwargs), [Path(path), *map(Path, also)])

    def warm_up(self) -> None:
        """Start the process and import what drawing needs (matplotlib, scikit-learn:
        seconds), before any plot is asked for; :meth:`wait` returns once that is done.
        A failed import is left to the plot that needs it to report."""
        self._send((warm_up, None, (), {}), [])

    def _send(self, job: tuple, files: list[Path]) -> None:
        if self._process is None:
            self._process = subprocess.Popen(
                python_command(SERVE),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            # stopped by close(), else when the painter is collected or Python exits
            self._stop = weakref.finalize(self, _stop, self._process)
        pickle.dump(job, self._process.stdin)
        self._process.stdin.flush()
        self._drawing.append(files)

    def wait(self) -> list[Path]:
        """The files drawn since the last wait, all written (a warm-up, done); raises the
        first error."""
        drawing, self._drawing = self._drawing, []
        errors = []
        for files in drawing:
            answer = self._answer()
            if answer != "ok":
                errors.append(f"cannot draw {files[0].name if files else 'the plots'}: "
                              f"{answer}")
        if errors:
            raise PlotError(errors[0])
        return [file for files in drawing for file in files]

    def close(self) -> None:
        """Stop the process: what it is drawing is lost, the files stay as they were."""
        if self._process is not None:
            self._stop()
            self._process = None
        self._drawing, self._unread = [], b""

    def _answer(self) -> str:
        """The next line the process writes (read from the descriptor: select then sees
        what is not read yet); a PlotError when it ends or takes over TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self._unread:
            ready, _, _ = select.select([self._process.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._process.stdout.fileno(), 65536) if ready else None
            if not chunk:
                status = self._process.poll()
                self.close()
                raise PlotError(f"the drawing process ended (exit status {status})" if ready
                                else f"the plots took over {TIMEOUT:.0f} s to draw")
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return line.decode()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()


def warm_up(path=None) -> None:
    """Import the libraries the plots draw with (a job of :meth:`Painter.warm_up`)."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import matplotlib.ticker  # noqa: F401
        import sklearn.manifold  # noqa: F401
        import threadpoolctl  # noqa: F401
    except Exception:                                 # any: the plot will say it
        pass


def serve() -> None:
    """The drawing process: draw each job read from stdin, answer on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is for the run, which stops us
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                                     # a stray print cannot garble answers
    jobs = queue.SimpleQueue()

    def read():                                       # at once: the run never waits to write
        while True:
            try:
                jobs.put(pickle.load(sys.stdin.buffer))
            except EOFError:
                jobs.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while (job := jobs.get()) is not None:
        plot, path, args, kwargs = job
        try:
            plot(path, *args, **kwargs)
            answer = "ok"
        except Exception as e:                        # told to the run
            answer = " ".join(f"{type(e).__name__}: {e}".split())
        answers.write(answer.encode() + b"\n")
        answers.flush()
