"""A WebSocket terminal client for the benchmark, on the ``websockets`` library.

It speaks either dialect of the protocol (``terminal/protocol.py``): JSON
text frames, or binary output frames (``agentpty.v2.binary``, what the web
UI uses), and keeps the output it has read so far as text, so a measurement
can wait for a text to appear: reading is driven by frames arriving, never
by polling.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from agentpty.terminal.protocol import (
    BINARY,
    ServerMessage,
    input_frame,
    parse_server_frame,
    resize_frame,
)
from bench.server import ServerProcess

__all__ = ["Compression", "Dialect", "Terminal"]

#: ``"deflate"`` is what browsers offer (permessage-deflate); None offers no compression.
Compression = Literal["deflate"] | None
#: ``"binary"`` is what the web UI asks for; ``"json"`` what a script without a subprotocol gets.
Dialect = Literal["binary", "json"]


class Terminal:
    """One attached client: ``type`` input, ``read_until`` a text shows up in the output."""

    def __init__(self, ws: ClientConnection, dialect: Dialect) -> None:
        self.ws = ws
        self.dialect = dialect
        self.output = ""
        self.frames = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @classmethod
    async def attach(
        cls,
        server: ServerProcess,
        project_id: str,
        *,
        compression: Compression = "deflate",
        dialect: Dialect = "binary",
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
        ws = await connect(
            url,
            compression=compression,
            max_size=None,
            ping_interval=None,
            subprotocols=[Subprotocol(BINARY)] if dialect == "binary" else None,
        )
        # A server without the binary dialect (an older version) answers in JSON.
        return cls(ws, "binary" if ws.subprotocol == BINARY else "json")

    async def close(self) -> None:
        await self.ws.close()

    def decode(self, data: bytes) -> str:
        """Output bytes as text (a character split across frames is kept until whole)."""
        return self._decoder.decode(data)

    async def frame(self) -> ServerMessage:
        """Read one frame; output is appended to ``output``."""
        message = parse_server_frame(await self.ws.recv())
        self.frames += 1
        if message.type == "output":
            self.output += self.decode(message.data)
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
        await self.ws.send(input_frame(data))

    async def resize(self, rows: int, cols: int) -> None:
        await self.ws.send(resize_frame(rows, cols))
