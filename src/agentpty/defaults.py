"""Defaults that the settings and the command line's client commands share.

A module of its own, without pydantic: a client command (``agentpty
projects``, ``attach``) needs the default address and data dir to find a
local server and its token, and importing ``agentpty.config`` would cost it
a quarter of a second of start-up.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "HOST", "PORT"]

HOST = "127.0.0.1"
PORT = 8484
DATA_DIR = Path("~/.local/share/agentpty")
