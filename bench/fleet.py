"""A fleet of idle attached sessions: the background of the idle CPU and memory budgets.

Each member is a shell project with one WebSocket client attached that keeps
reading (as an open browser tab does). The fleet is ready when every shell
has shown its prompt; then it settles for a second so start-up work (shell
start, the server's deferred screen sync) is over before anything is measured.
"""

from __future__ import annotations

import asyncio
import contextlib

from bench.client import Terminal
from bench.server import PROMPT, ServerProcess

__all__ = ["Fleet"]

SETTLE_SECONDS = 1.0


class _Member:
    def __init__(self, project_id: str, terminal: Terminal) -> None:
        self.project_id = project_id
        self.terminal = terminal
        self.ready = asyncio.Event()
        self.frames_when_ready = 0

    async def read(self) -> None:
        """Read until the connection closes; ``ready`` is set once the prompt showed."""
        await self.terminal.read_until(PROMPT, timeout=120)
        self.frames_when_ready = self.terminal.frames
        self.terminal.output = ""  # keep nothing: an idle tab only draws
        self.ready.set()
        while True:
            await self.terminal.ws.recv()
            self.terminal.frames += 1


class Fleet:
    """``size`` idle shell sessions, each with a reading client; ``close`` detaches them all."""

    def __init__(self) -> None:
        self._members: list[_Member] = []
        self._readers: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        return len(self._members)

    @classmethod
    async def start(cls, server: ServerProcess, size: int) -> Fleet:
        """Create ``size`` projects, attach a client to each, wait for every prompt, settle."""
        fleet = cls()
        try:
            project_ids = [await server.create_project(f"idle {n}") for n in range(size)]
            terminals = await asyncio.gather(*(Terminal.attach(server, pid) for pid in project_ids))
            for project_id, terminal in zip(project_ids, terminals, strict=True):
                member = _Member(project_id, terminal)
                fleet._members.append(member)
                task = asyncio.get_running_loop().create_task(
                    member.read(), name=f"idle reader {project_id}"
                )
                fleet._readers.add(task)
                task.add_done_callback(fleet._readers.discard)
            async with asyncio.timeout(120):
                for member in fleet._members:
                    await member.ready.wait()
            failed = [task for task in fleet._readers if task.done()]
            if failed:
                failed[0].result()
            await asyncio.sleep(SETTLE_SECONDS)
        except BaseException:
            await fleet.close()
            raise
        return fleet

    def frames_since_ready(self) -> int:
        """Frames the clients received after their prompt: what "idle" still sends."""
        return sum(
            m.terminal.frames - m.frames_when_ready for m in self._members if m.ready.is_set()
        )

    async def close(self) -> None:
        """Stop the readers and close every WebSocket. Idempotent."""
        for task in list(self._readers):
            task.cancel()
        for task in list(self._readers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(m.terminal.close() for m in self._members), return_exceptions=True)
        self._members.clear()
