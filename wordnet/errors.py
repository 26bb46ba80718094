"""The base of the package's own errors.

Every error the package raises on purpose derives from :class:`WordNetError`: its
message is meant for the user, and the command line prints it as one line (exit
status ``exit_code``: 1, or 2 for input the command cannot use).  Anything else
reaching the command line is a bug, shown as "unexpected ...".
"""
from __future__ import annotations


class WordNetError(Exception):
    """An error whose message says, in one line, what went wrong and what to do."""
    exit_code = 1


class ConfigError(WordNetError, ValueError):
    """A hyperparameter is unknown or out of range."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops whatever runs as Ctrl-C does (a run ends KILLED, its folder says so),
    and the command line ends with status 143, "Terminated."."""
