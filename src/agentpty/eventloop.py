"""Which event loop to run on: the server and the session host choose alike.

A module of its own, without pydantic or the server's imports: the session
host (``python -m agentpty.host``) imports it too.
"""

from __future__ import annotations

import sys
from asyncio import AbstractEventLoop
from collections.abc import Callable

__all__ = ["event_loop_factory"]


def event_loop_factory(choice: str) -> Callable[[], AbstractEventLoop] | None:
    """uvloop's loop if installed, unless ``choice`` (the ``event_loop`` setting) asks
    for asyncio's own. None means asyncio's default."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            print("agentpty: uvloop is not installed; using asyncio's loop", file=sys.stderr)
        return None
    return uvloop.new_event_loop
