"""A WebSocket terminal client for the benchmark, on the ``websockets`` library.

It speaks the protocol of DESIGN.md (JSON text frames: ``status``, then
``output`` with the screen snapshot, then live ``output``) and keeps the
output it has read so far, so a test can wait for a text to appear: reading
is driven by frames arriving, never by polling.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect

from bench.server import ServerProcess

__all__ = ["Compression", "Terminal"]

#: ``"deflate"`` is what browsers negotiate (permessage-deflate); None sends frames as they are.
Compression = Literal["deflate"] | None


class Terminal:
    """One attached client: ``type`` input, ``read_until`` a text shows up in the output."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.output = ""
        self.frames = 0

    @classmethod
    async def attach(
        cls,
        server: ServerProcess,
        project_id: str,
        *,
        compression: Compression = "deflate",
        rows: int = 24,
        cols: int = 120,
    ) -> Terminal:
        """Open the project's terminal WebSocket (this starts its session)."""
        url = (
            f"{server.ws_url}/api/output-projects/{project_id}/terminal"
            f"?token={server.token}&rows={rows}&cols={cols}"
        )
        # No client pings: a browser sends none, and they would add server work
        # to the idle measurements. The server's own pings still count.
        ws = await connect(url, compression=compression, max_size=None, ping_interval=None)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    async def frame(self) -> dict[str, Any]:
        """Read one frame; output is appended to ``output``."""
        message: dict[str, Any] = json.loads(await self.ws.recv())
        self.frames += 1
        if message["type"] == "output":
            self.output += message["data"]
        return message

    async def read_until(self, text: str, *, start: int = 0, timeout: float = 30.0) -> int:
        """Read frames until ``text`` occurs in ``output`` at or after ``start``; return where."""
        async with asyncio.timeout(timeout):
            while (found := self.output.find(text, start)) < 0:
                # Only the tail can hold a match that straddles two frames.
                start = max(start, len(self.output) - len(text) + 1)
                await self.frame()
        return found

    async def type(self, data: str) -> None:
        await self.ws.send(json.dumps({"type": "input", "data": data}))
