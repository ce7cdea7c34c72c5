"""The signal state an agent process starts with, whoever starts it.

An exec'd program keeps the signals its parent ignored and the signals it
blocked. A server started in the background of a script (``agentpty serve &``
ignores SIGINT and SIGQUIT), under ``nohup`` (SIGHUP), or from a Python
process (SIGPIPE, SIGXFSZ) would pass that on, and Ctrl-C would no longer
interrupt the agent or its commands. The in-process PTY and the session
host's keeper both call ``reset_for_exec`` in the child, before exec.
"""

from __future__ import annotations

import signal

__all__ = ["reset_for_exec"]

#: Signals a terminal program expects at their default action.
DEFAULT_ACTION = (
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGCHLD,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


def reset_for_exec() -> None:  # pragma: no cover - runs in the child before exec
    """Every job-control and terminal signal at its default action, none blocked."""
    for sig in DEFAULT_ACTION:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
