"""Adoption: a starting server takes over the sessions the session host kept running.

For every session the host lists: a live one whose project this server
knows is followed again (same process, no resume, the screen rebuilt from
the host's output ring, which includes what was printed while no server
ran); an exited one has its exit recorded (the ``exited`` event); one whose
project was deleted meanwhile is stopped. Exits are acknowledged, so the
host forgets them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agentpty.domain.errors import AgentptyError, NotFound
from agentpty.domain.models import EventKind
from agentpty.host.client import HostClient, HostError
from agentpty.service.history import History
from agentpty.service.sessions import TerminalSessions
from agentpty.store.base import Store
from agentpty.terminal.hosted import hosted_factory
from agentpty.terminal.session import TerminalSession

__all__ = ["AdoptionService"]

log = logging.getLogger(__name__)


class AdoptionService:
    def __init__(
        self, store: Store, sessions: TerminalSessions, history: History, client: HostClient
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.history = history
        self.client = client

    async def adopt_all(self) -> int:
        """Adopt what a running host holds (none running: nothing to do); return how many."""
        try:
            if not await self.client.connect(start=False):
                return 0
            listed = (await self.client.request("list"))["sessions"]
        except HostError as exc:
            log.error("cannot list the session host's sessions: %s", exc)
            return 0
        started = time.perf_counter()
        results = await asyncio.gather(*(self._adopt(info) for info in listed))
        adopted = sum(results)
        if listed:
            log.info(
                "adopted %d of %d session(s) from the session host in %.3f s",
                adopted,
                len(listed),
                time.perf_counter() - started,
            )
        return adopted

    async def _adopt(self, info: dict[str, Any]) -> bool:
        key = str(info["key"])
        try:
            project = await self.store.get_project(key)
        except NotFound:
            log.warning("session %s belongs to no project any more: stopping it", key)
            await self._forget(key, stop=info["state"] != "exited")
            return False
        if info["state"] == "exited":
            log.info(
                "project %s: its agent exited with %s while no server ran", key, info["exit_code"]
            )
            await self.history.record(
                key,
                EventKind.EXITED,
                project.agent_session_id,
                exit_code=info["exit_code"],
                reason=info.get("reason"),
                while_detached=True,
            )
            await self._forget(key, stop=False)
            return False
        meta = info.get("meta") or {}
        terminal = TerminalSession(
            key,
            [],
            cwd=project.workspace_path,
            env={},
            rows=int(info["rows"]),
            cols=int(info["cols"]),
            idle_timeout=self.sessions.idle_timeout,
            limits=self.sessions.limits,
            process_factory=hosted_factory(self.client),
            meta=meta,
        )
        try:
            self.sessions.adopted(project, terminal, resumed=bool(meta.get("resumed")))
            await terminal.adopt()
        except AgentptyError as exc:
            log.error("project %s: cannot adopt its session: %s", key, exc.message)
            return False
        log.info("project %s: adopted pid %s (%s)", key, terminal.pid, terminal.containment)
        return True

    async def _forget(self, key: str, *, stop: bool) -> None:
        try:
            if stop:
                await self.client.request("stop", key=key, reason="project deleted")
            self.client.notify("ack", key=key)
        except HostError as exc:
            log.warning("session %s: %s", key, exc)
