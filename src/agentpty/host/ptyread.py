"""Reading what a PTY master has ready without blocking: the host's reader and the server's."""

from __future__ import annotations

import errno
import logging
import os

__all__ = ["read_ready"]

log = logging.getLogger(__name__)


def read_ready(fd: int, limit: int, name: str) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes already readable from ``fd``, and whether reading is over.

    The kernel hands PTY output over a few KiB at a time: under a flood,
    gathering what is there already makes fewer, larger frames downstream
    (less CPU per byte); a keystroke's echo still goes at once. Reading is
    over at EOF or EIO (no slave is open any more: the agent and its heirs
    are gone); another error is logged under ``name`` and ends it too.
    """
    chunks: list[bytes] = []
    size = 0
    ended = False
    while size < limit:
        try:
            data = os.read(fd, limit - size)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.warning("%s: PTY read failed: %s", name, exc)
            ended = True
            break
        if not data:
            ended = True
            break
        chunks.append(data)
        size += len(data)
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), ended
