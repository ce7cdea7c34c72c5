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

#: Longer than the server's AGENTPTY_STATE_QUIET_TIME (2 s): a shell's agent state
#: turns idle that long after its prompt, and that is start-up, not idleness.
SETTLE_SECONDS = 3.0


class _Member:
    def __init__(self, project_id: str, terminal: Terminal) -> None:
        self.project_id = project_id
        self.terminal = terminal
        self.ready = asyncio.Event()
        self.error: BaseException | None = None
        self.frames_when_ready = 0

    async def read(self) -> None:
        """Read until the connection closes.

        ``ready`` is set once the prompt showed, or with ``error`` if it never will.
        """
        try:
            await self.terminal.read_until(PROMPT, timeout=120)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise
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
        self._readers: list[asyncio.Task[None]] = []

    @property
    def project_ids(self) -> list[str]:
        return [member.project_id for member in self._members]

    @property
    def size(self) -> int:
        return len(self._members)

    @classmethod
    async def start(cls, server: ServerProcess, size: int) -> Fleet:
        """Create ``size`` projects, attach a client to each, wait for every prompt, settle."""
        fleet = cls()
        try:
            project_ids = [await server.create_project(f"idle {n}") for n in range(size)]
            attached = await asyncio.gather(
                *(Terminal.attach(server, pid) for pid in project_ids), return_exceptions=True
            )
            failures = [result for result in attached if isinstance(result, BaseException)]
            for project_id, result in zip(project_ids, attached, strict=True):
                if isinstance(result, Terminal):
                    fleet._members.append(_Member(project_id, result))
            if failures:
                first = failures[0]
                raise RuntimeError(f"{len(failures)} of {size} clients could not attach: {first!r}")
            for member in fleet._members:
                fleet._readers.append(
                    asyncio.get_running_loop().create_task(
                        member.read(), name=f"idle reader {member.project_id}"
                    )
                )
            for member in fleet._members:
                await member.ready.wait()
                if member.error is not None:
                    raise RuntimeError(
                        f"session {member.project_id} never showed its prompt: {member.error!r}"
                    ) from member.error
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
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            # A reader that failed has been reported through ``error`` already.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(m.terminal.close() for m in self._members), return_exceptions=True)
        self._readers.clear()
        self._members.clear()
