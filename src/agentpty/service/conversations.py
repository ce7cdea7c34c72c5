"""The conversation id of each project: chosen or learnt, stored, expired, followed.

One service owns every change of a project's stored conversation id
(``agent_session_id``), whatever the agent:

- Agents that let agentpty choose (``chooses_id``): a fresh id is stored
  before the first start, only if none is.
- Agents that choose their own: the first start has no id; it is learnt from
  a hook report, a headless ``init`` event or the agent's own files
  (``discover``), and stored only if none is.
- Every later start resumes the stored id. If a conversation known to hold
  messages (``confirmed_session_id``) has vanished, it is expired: replaced
  by compare-and-set (a fresh id, or none for agents that choose their own),
  with an ``expired`` event keeping the old id.
- An agent may move to another conversation while it runs (Claude Code's
  ``/clear``): a hook report says so and the stored id follows it.

Every id that enters from outside is checked with the agent's ``valid_id``.
Listeners (the terminal sessions) hear of every change of a stored id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from agentpty.agents.base import AgentProfile
from agentpty.agents.capabilities import AgentReport, ConversationSupport, ReportKind
from agentpty.domain.errors import InvalidInput
from agentpty.domain.models import EventKind, OutputProject
from agentpty.service.history import History
from agentpty.store.base import Store

__all__ = ["ConversationService", "IdListener"]

log = logging.getLogger(__name__)

#: Called with (project id, old id, new id) after the stored id changed.
IdListener = Callable[[str, str | None, str | None], None]


#: Reports whose id is the conversation the agent now continues.
_NAMES_CONVERSATION = frozenset({ReportKind.CONVERSATION_STARTED, ReportKind.PROMPT_SUBMITTED})


class ConversationService:
    def __init__(
        self, store: Store, profiles: Mapping[str, AgentProfile], history: History
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.history = history
        self._listeners: list[IdListener] = []

    def add_listener(self, listener: IdListener) -> None:
        self._listeners.append(listener)

    def support(self, agent: str) -> ConversationSupport | None:
        """The agent's conversation capability; None for agents with nothing to resume."""
        profile = self.profiles.get(agent)
        return None if profile is None else profile.conversations

    def check_id(self, agent: str, conversation_id: str) -> None:
        """``InvalidInput`` unless ``conversation_id`` has the shape of the agent's ids."""
        support = self.support(agent)
        if support is None or not support.valid_id(conversation_id):
            log.warning(
                "refused conversation id %r reported for agent %s", conversation_id[:80], agent
            )
            raise InvalidInput(
                f"{conversation_id[:80]!r} is not a conversation id of agent {agent!r}"
            )

    # -- before a start

    async def starting_id(
        self, project_id: str, support: ConversationSupport
    ) -> tuple[str | None, str | None]:
        """The id to start the project's conversation with, and the id it replaced.

        None as first value: start a fresh conversation whose id the agent
        chooses. A conversation known to hold messages that has vanished is
        expired (starting its id again would silently begin an empty one).
        """
        if support.chooses_id:
            await self.store.set_agent_session_id_if_unset(project_id, support.new_id())
        project = await self.store.get_project(project_id)
        current = project.agent_session_id
        if current is None or await asyncio.to_thread(support.exists, current):
            return current, None
        if project.confirmed_session_id == current:
            reason = "the conversation's transcript no longer exists"
            if not await self.expire(project_id, support, current, reason):
                return current, None
            fresh = await self.store.get_project(project_id)
            return fresh.agent_session_id, current
        if not support.chooses_id:
            # Learnt but never seen holding a message: nothing to resume and
            # nothing lost. Forget it, so that the next id is learnt again.
            await self._replace(project_id, current, None, "never held a message")
            return None, None
        return current, None  # ours, never used yet: start it under the same id

    async def expire(
        self, project_id: str, support: ConversationSupport, old: str | None, reason: str
    ) -> bool:
        """Replace the expired id ``old`` (compare-and-set) and record an ``expired`` event.

        The replacement is a fresh id, or none for an agent that chooses its
        own. False if the stored id changed meanwhile (nothing is replaced).
        """
        new = support.new_id() if support.chooses_id else None
        if not await self.store.replace_agent_session_id(project_id, old, new):
            log.warning("project %s: conversation id changed meanwhile; not replacing", project_id)
            return False
        log.warning(
            "project %s: conversation %s expired (%s); new %s", project_id, old, reason, new
        )
        self._changed(project_id, old, new)
        await self.history.record(
            project_id, EventKind.EXPIRED, new, previous_agent_session_id=old, reason=reason
        )
        return True

    # -- what is learnt while the agent runs

    async def confirm(self, project_id: str, conversation_id: str) -> None:
        """Remember that ``conversation_id``'s conversation holds messages."""
        project = await self.store.get_project(project_id)
        if (
            project.confirmed_session_id != conversation_id
            and project.agent_session_id == conversation_id
        ):
            await self.store.update_project(project_id, confirmed_session_id=conversation_id)

    async def confirm_if_exists(self, project: OutputProject, conversation_id: str) -> bool:
        """Confirm ``conversation_id`` when the agent's own files show it holds messages.

        True when it is confirmed (now or before).
        """
        fresh = await self.store.get_project(project.id)
        if fresh.confirmed_session_id == conversation_id:
            return True
        support = self.support(project.agent)
        if support is not None and await asyncio.to_thread(support.exists, conversation_id):
            await self.confirm(project.id, conversation_id)
            return True
        return False

    async def learn(self, project: OutputProject, conversation_id: str, source: str) -> str | None:
        """Store ``conversation_id`` if the project has none; return the stored id.

        For ids the agent reports (headless ``init``, its files). An id of the
        wrong shape is refused (``InvalidInput``).
        """
        self.check_id(project.agent, conversation_id)
        stored = await self.store.set_agent_session_id_if_unset(project.id, conversation_id)
        if stored == conversation_id:
            log.debug("project %s: conversation %s (%s)", project.id, stored, source)
            # Listeners ignore it when they knew the id already.
            self._changed(project.id, None, stored)
        return stored

    async def discover(self, project: OutputProject, since: datetime) -> str | None:
        """Learn the id of a conversation the agent started after ``since`` from its files.

        Only for agents that choose their own ids, while none is stored.
        """
        support = self.support(project.agent)
        if support is None or support.chooses_id:
            return None
        fresh = await self.store.get_project(project.id)
        if fresh.agent_session_id is not None:
            return fresh.agent_session_id
        found = await asyncio.to_thread(support.discover, project.workspace_path, since)
        if found is None:
            return None
        if not support.valid_id(found):
            log.warning("project %s: discovered id %r refused", project.id, found[:80])
            return None
        return await self.learn(fresh, found, "discovered")

    async def follow(self, project: OutputProject, report: AgentReport) -> bool:
        """Apply a hook report: store the id it names, note conversations that hold messages.

        Returns True when the stored id changed. ``InvalidInput`` for an id of
        the wrong shape.
        """
        if report.conversation_id is None or self.support(project.agent) is None:
            return False
        if report.kind not in _NAMES_CONVERSATION:
            # Tool, turn and end reports name the id too, but SessionEnd on /clear
            # names the old one after SessionStart named the new: never follow those.
            return False
        new = report.conversation_id
        self.check_id(project.agent, new)
        changed = await self.adopt(project.id, new, report.source or str(report.kind))
        if report.kind is ReportKind.PROMPT_SUBMITTED:
            # The prompt hook may come before the transcript is on disk.
            await self.confirm(project.id, new)
        elif report.kind is ReportKind.CONVERSATION_STARTED:
            await self.confirm_if_exists(project, new)
        return changed

    async def adopt(self, project_id: str, conversation_id: str, source: str | None) -> bool:
        """The agent says its conversation is now ``conversation_id``; store it if it changed."""
        project = await self.store.get_project(project_id)
        old = project.agent_session_id
        if old == conversation_id:
            return False
        return await self._replace(project_id, old, conversation_id, source)

    async def _replace(
        self, project_id: str, old: str | None, new: str | None, source: str | None
    ) -> bool:
        if not await self.store.replace_agent_session_id(project_id, old, new):
            return False
        log.info("project %s: conversation id %s → %s (%s)", project_id, old, new, source)
        self._changed(project_id, old, new)
        if new is not None:
            await self.history.record(
                project_id, EventKind.ID_CHANGED, new, previous_agent_session_id=old, source=source
            )
        return True

    def _changed(self, project_id: str, old: str | None, new: str | None) -> None:
        for listener in self._listeners:
            listener(project_id, old, new)
