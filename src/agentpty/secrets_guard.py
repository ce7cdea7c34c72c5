"""Keeping the server's secrets from same-user processes (agents included) on Linux.

``/proc/<pid>/environ`` shows the environment a process was *started* with,
read from its memory, whatever it changed since; ``/proc/<pid>/mem`` shows
the rest. A non-dumpable process denies both to same-user processes without
``CAP_SYS_PTRACE``; root keeps that capability, so the token's bytes in the
start-up environment are also overwritten (Python's ``os.environ`` is a copy
made earlier and keeps working).
"""

from __future__ import annotations

import ctypes
import logging

from agentpty.host.keeper import PR_SET_DUMPABLE, prctl

__all__ = ["SECRET_VARIABLES", "protect_process"]

log = logging.getLogger(__name__)

#: Start-up variables whose values are secrets.
SECRET_VARIABLES = (b"AGENTPTY_TOKEN", b"AGENTPTY_DATABASE_URL")


def _environ_area() -> tuple[int, int]:
    """Start and end address of this process's start-up environment (``/proc/self/stat``)."""
    with open("/proc/self/stat", "rb") as handle:
        stat = handle.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    # Fields 50 and 51 of proc(5) (env_start, env_end); the split starts at field 3.
    return int(fields[47]), int(fields[48])


def protect_process() -> None:
    """Make this process non-dumpable and blank the secrets of its start-up environment."""
    prctl(PR_SET_DUMPABLE, 0)
    try:
        start, end = _environ_area()
        with open("/proc/self/environ", "rb") as handle:
            environ = handle.read()
    except (OSError, ValueError, IndexError) as exc:
        log.warning("cannot read the start-up environment to blank secrets: %s", exc)
        return
    if len(environ) > end - start:
        return
    offset = 0
    for entry in environ.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name in SECRET_VARIABLES and value:
            ctypes.memset(start + offset + len(name) + 1, ord("*"), len(value))
        offset += len(entry) + 1
