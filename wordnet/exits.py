"""How a command of ``wordnet-pipeline`` ends: its exit status, and the one line that
says why.  The package's errors (:class:`wordnet.errors.WordNetError`, with their own
status) and OS errors become one-line messages, anything else "unexpected ..."
(tracebacks with ``--debug``); Ctrl-C, SIGTERM and a reader gone away (``| head``)
end quietly with the statuses a shell expects.  ``EPILOG`` documents them all.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import click

from wordnet.errors import Terminated, WordNetError

DEBUG = "wordnet.debug"               # ctx.meta's key: --debug was given

# Every command's exit status, said once, in the top-level help; each command points there.
EPILOG = """\b
Exit status: 0 success; 1 failure (training diverged, a reproduction check
failed, a missing file, a full disk or an unreachable server); 2 usage error
(bad option, --set key or value, or input words); 130 interrupted (Ctrl-C); 141
the output's reader went away (| head); 143 terminated (SIGTERM).  The same for
every command.
"""
SEE_EXIT = "Exit statuses: see wordnet-pipeline --help."


def open_standard_streams() -> None:
    """Standard input, output and error that were closed (``2>&-``) opened on /dev/null,
    before anything else is opened: the progress line and messages then go nowhere
    instead of failing (Python leaves ``sys.stderr`` None), and no file the run opens
    takes descriptor 2, where a library's or a child's error output would land in it."""
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY),
                           (2, "stderr", os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue                                  # open
        except OSError:
            pass
        null = os.open(os.devnull, mode)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))


class BadInput(click.ClickException):
    """Input the command cannot use: one line, exit status 2."""
    exit_code = 2


def _terminate(signum, frame):
    raise Terminated()


class Group(click.Group):
    """Turns the package's errors into one-line messages (tracebacks with --debug), and
    SIGTERM into :class:`Terminated`."""

    def invoke(self, ctx):
        main = threading.current_thread() is threading.main_thread()   # signals go there only
        previous = signal.signal(signal.SIGTERM, _terminate) if main else None
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Terminated:
            click.echo("Terminated.", err=True)
            raise click.exceptions.Exit(143) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`wordnet-pipeline nearest day | head -1`): stop
            # quietly, with the status of a program SIGPIPE ended; stdout goes to
            # /dev/null so that the interpreter's last flush has nowhere to fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except Exception as e:
            if ctx.meta.get(DEBUG):
                raise
            # The package's own errors and OS errors carry a message meant for users.
            if isinstance(e, WordNetError):
                error = click.ClickException(str(e))
                error.exit_code = e.exit_code
                raise error from None
            if isinstance(e, OSError):
                raise click.ClickException(str(e)) from None
            raise click.ClickException(f"unexpected {type(e).__name__}: {e} "
                                       "(run with --debug for the traceback)") from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
