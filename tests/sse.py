"""A server-sent-events client for tests: reads ``GET /api/events`` in a task of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.helpers import RunningServer, timeout

__all__ = ["SseClient", "sse_client"]


class SseClient:
    """Every event received so far (``events``), and waiting for one that matches."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.names: list[str] = []
        self.ids: list[str | None] = []
        self._changed = asyncio.Condition()

    async def _feed(self, response: httpx.Response) -> None:
        name, data, event_id = "message", "", None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line == "":
                if data:
                    async with self._changed:
                        self.events.append(json.loads(data))
                        self.names.append(name)
                        self.ids.append(event_id)
                        self._changed.notify_all()
                name, data, event_id = "message", "", None

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], start: int = 0, wait: float = 30
    ) -> int:
        """The index of the first event at or after ``start`` that matches (waits for it)."""
        async with asyncio.timeout(timeout(wait)), self._changed:
            while True:
                for index in range(start, len(self.events)):
                    if match(self.events[index]):
                        return index
                await self._changed.wait()

    def states(self, project_id: str) -> list[str]:
        return [
            e["agent_state"]
            for e in self.events
            if e.get("type") == "state" and e.get("project_id") == project_id
        ]


@contextlib.asynccontextmanager
async def sse_client(
    server: RunningServer, *, last_event_id: str | None = None, query: str = ""
) -> AsyncIterator[SseClient]:
    """Connected to ``/api/events`` (answer 200 checked) until the block ends."""
    client = SseClient()
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with server.http() as http:
        http.timeout = httpx.Timeout(timeout(30), read=None)
        async with http.stream("GET", f"/api/events{query}", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.ensure_future(client._feed(response))
            try:
                yield client
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await reader
