"""The agent state of each project: a state machine fed by hook reports, exits and the screen.

Inputs, most trusted first:

- ``report``: an ``AgentReport`` from the agent's hooks (Claude Code);
- ``started`` / ``exited``: the terminal session's process began or ended;
- ``observe_screen``: for agents without hooks, output activity and quiet
  time; for agents with hooks, only to leave ``working``/``needs_input`` when
  the agent went back to its prompt without a hook saying so (Claude Code
  fires none when a permission prompt is refused or a turn interrupted).

Every change is stored with the project (so it survives a restart) and
published on the event bus as a ``state`` event; repeated reports of the
same state publish nothing. Prompt confirmations (``expect_prompt``) and the
"not while the agent asks something" gate of command delivery are answered
here because both follow the same reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentpty.agents.capabilities import AgentReport, ReportKind
from agentpty.domain.errors import NotFound
from agentpty.domain.models import AgentState, utcnow
from agentpty.service.event_bus import EventBus
from agentpty.service.keyed import KeyedConditions, KeyedLocks
from agentpty.store.base import Store

__all__ = ["AgentStateService", "StateView", "prompt_matches"]

log = logging.getLogger(__name__)

#: States in which the agent is at work or waits on the user (an exit ends them).
ACTIVE = frozenset({AgentState.WORKING, AgentState.NEEDS_INPUT})


@dataclass(frozen=True)
class StateView:
    state: AgentState
    since: datetime | None
    detail: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The JSON fields clients see: ``agent_state``, ``state_since``, ``state_detail``."""
        asking = self.state is AgentState.NEEDS_INPUT
        return {
            "agent_state": str(self.state),
            "state_since": None if self.since is None else self.since.isoformat(),
            "state_detail": dict(self.detail),
            #: What the agent asks while it needs input (the tool and its command), else None.
            "question": (
                {"tool": self.detail.get("tool"), "detail": self.detail.get("detail")}
                if asking
                else None
            ),
        }


def prompt_matches(typed: str, reported: str | None) -> bool:
    """True when the prompt an agent reported is the text agentpty typed."""
    if reported is None:
        return False
    typed, reported = typed.strip(), reported.strip()
    return bool(typed) and (typed == reported or typed in reported)


class AgentStateService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._views: dict[str, StateView] = {}
        self._locks = KeyedLocks()
        self._changed = KeyedConditions()
        self._prompts: defaultdict[str, list[tuple[str, asyncio.Future[str]]]] = defaultdict(list)

    # -- queries

    async def view(self, project_id: str) -> StateView:
        """The project's state (from memory, else as stored)."""
        view = self._views.get(project_id)
        if view is None:
            project = await self.store.get_project(project_id)
            view = StateView(project.agent_state, project.state_since, project.state_detail)
            self._views[project_id] = view
        return view

    def cached(self, project_id: str) -> StateView | None:
        return self._views.get(project_id)

    # -- inputs

    async def report(self, project_id: str, report: AgentReport) -> StateView:
        """Apply one hook report; returns the state after it."""
        kind = report.kind
        if kind is ReportKind.PROMPT_SUBMITTED:
            self._confirm_prompt(project_id, report.prompt)
        if (await self.view(project_id)).state is AgentState.EXITED:
            # A hook of a process already gone, arriving late: the exit stands.
            return await self.view(project_id)
        if kind is ReportKind.PROMPT_SUBMITTED:
            return await self.set(project_id, AgentState.WORKING, {"source": "hook"})
        if kind is ReportKind.TOOL_STARTED:
            current = await self.view(project_id)
            if current.state is AgentState.NEEDS_INPUT:
                return current  # the question still waits; a finished tool answers it
            return await self.set(project_id, AgentState.WORKING, _tool(report))
        if kind is ReportKind.TOOL_FINISHED:
            return await self.set(project_id, AgentState.WORKING, {"source": "hook"})
        if kind is ReportKind.NEEDS_INPUT:
            current = await self.view(project_id)
            if report.tool is None and current.state is not AgentState.WORKING:
                # A later, vaguer notice (Claude Code's Notification comes seconds
                # after the dialog): of a question already known, or one already answered.
                return current
            return await self.set(project_id, AgentState.NEEDS_INPUT, _tool(report))
        if kind is ReportKind.TURN_ENDED:
            current = await self.view(project_id)
            if current.state is AgentState.IDLE:
                return current  # Claude Code's idle reminder repeats what Stop said
            return await self.set(project_id, AgentState.IDLE, {"source": report.source or "hook"})
        if kind is ReportKind.CONVERSATION_STARTED:
            current = await self.view(project_id)
            if current.state is AgentState.IDLE or (current.state in ACTIVE and not report.fresh):
                return current
            return await self.set(project_id, AgentState.IDLE, {"source": report.source or "hook"})
        # CONVERSATION_ENDED: the process exit (with its code) follows and says more.
        return await self.view(project_id)

    async def started(self, project_id: str) -> StateView:
        return await self.set(project_id, AgentState.STARTING, {})

    async def exited(self, project_id: str, exit_code: int | None) -> StateView:
        # Prompt expectations stay: a process replacing an expired conversation
        # receives the command next (its waiter watches the process it typed into).
        return await self.set(project_id, AgentState.EXITED, {"exit_code": exit_code})

    async def observe_screen(self, project_id: str, state: AgentState, **detail: Any) -> None:
        """A conclusion drawn from the screen (``source: screen``); hooks win when they speak."""
        current = await self.view(project_id)
        if current.state is state or current.state is AgentState.EXITED:
            return
        await self.set(project_id, state, {"source": "screen", **detail})

    async def set(self, project_id: str, state: AgentState, detail: dict[str, Any]) -> StateView:
        """Store and publish ``state`` unless it is already the project's state and detail."""
        async with self._locks.hold(project_id):
            current = await self.view(project_id)
            if current.state is state and current.detail == detail:
                return current
            view = StateView(state, utcnow(), detail)
            self._views[project_id] = view
            try:
                await self.store.update_project(
                    project_id, agent_state=state, state_since=view.since, state_detail=detail
                )
            except NotFound:
                self._views.pop(project_id, None)
                return view
            except Exception:
                # A store outage must not lose the live state: clients still see it.
                log.exception("project %s: could not store agent state %s", project_id, state)
            log.info("project %s: agent %s %s", project_id, state, detail or "")
            self.bus.publish("state", project_id, **view.fields())
        await self._changed.notify(project_id)
        return view

    def forget(self, project_id: str) -> None:
        """Drop what is kept in memory about a deleted project."""
        self._views.pop(project_id, None)
        self._fail_prompts(project_id)

    # -- waiting on the state

    async def wait_not_asking(self, project_id: str) -> None:
        """Return once the project's agent does not wait on a question (``needs_input``)."""

        async def answered() -> bool:
            return (await self.view(project_id)).state is not AgentState.NEEDS_INPUT

        await self._changed.wait_until(project_id, answered)

    def asking(self, project_id: str) -> bool:
        view = self._views.get(project_id)
        return view is not None and view.state is AgentState.NEEDS_INPUT

    # -- prompt confirmations

    def expect_prompt(self, project_id: str, text: str) -> asyncio.Future[str]:
        """A future resolved with the reported prompt once the agent reports ``text`` submitted.

        Register before typing: the report can arrive before the typing returns.
        The caller cancels it when it stops waiting.
        """
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiters = self._prompts[project_id]
        waiters.append((text, future))
        future.add_done_callback(lambda done: _discard(waiters, done))
        return future

    def _confirm_prompt(self, project_id: str, prompt: str | None) -> None:
        for text, future in list(self._prompts.get(project_id, ())):
            if not future.done() and prompt_matches(text, prompt):
                future.set_result(prompt or "")
                return

    def _fail_prompts(self, project_id: str) -> None:
        for _text, future in list(self._prompts.pop(project_id, ())):
            if not future.done():
                future.cancel()


def _tool(report: AgentReport) -> dict[str, Any]:
    detail: dict[str, Any] = {"source": "hook"}
    if report.tool is not None:
        detail["tool"] = report.tool
    if report.detail is not None:
        detail["detail"] = report.detail
    return detail


def _discard(waiters: list[tuple[str, asyncio.Future[str]]], done: asyncio.Future[str]) -> None:
    waiters[:] = [entry for entry in waiters if entry[1] is not done]
