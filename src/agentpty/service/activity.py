"""Ties terminal sessions to the agent state and the event stream.

``TerminalSessions`` tells its observers when a session starts and exits,
``History`` its listeners when it records an event; this observer turns
those into agent states, bus events, a delivery gate (no command is typed
while the agent asks something) and a screen watch:

- agents without hooks: output means ``working``, ``quiet_time`` without
  output means ``idle``;
- agents with hooks: only when the state says starting, working or
  needs_input, and output has been quiet for ``quiet_time`` while the screen
  shows the agent's prompt with no busy or question marker, the agent went
  back to its prompt without a hook saying so (a refused permission, an
  interrupted turn): ``idle``.

An idle session costs nothing here: one output listener that only records
the time of the last frame; no timer runs without output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentpty.domain.models import AgentState
from agentpty.service.agent_state import AgentStateService
from agentpty.service.event_bus import EventBus
from agentpty.service.tasks import OwnedTasks

if TYPE_CHECKING:
    from agentpty.service.sessions import LiveTerminal

__all__ = ["ActivityObserver", "ScreenPolicy", "StateGate"]

WATCHED = frozenset({AgentState.STARTING, AgentState.WORKING, AgentState.NEEDS_INPUT})


@dataclass(frozen=True)
class ScreenPolicy:
    """How the screen of one agent is read when its hooks are silent (or absent)."""

    has_hooks: bool
    ready_marker: str | None
    busy_markers: tuple[str, ...] = ()
    #: Text of a question or permission dialog on screen (the agent asks).
    asking_markers: tuple[str, ...] = ()
    quiet_time: float = 2.0


class StateGate:
    """The command queue's gate: hold typing while the agent waits on a question."""

    def __init__(self, states: AgentStateService, project_id: str) -> None:
        self._states = states
        self._project_id = project_id

    def blocked(self) -> bool:
        return self._states.asking(self._project_id)

    async def cleared(self) -> None:
        await self._states.wait_not_asking(self._project_id)


class _ScreenWatch:
    """Output listener of one session: the quiet timer of the screen fallback."""

    def __init__(
        self, observer: ActivityObserver, live: LiveTerminal, policy: ScreenPolicy
    ) -> None:
        self.observer = observer
        self.live = live
        self.policy = policy
        self.last_output = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.remove = live.terminal.add_output_listener(self.on_output)
        # The start counts as activity: output may have come before this listener.
        self.last_output = time.monotonic()
        self.timer = asyncio.get_running_loop().call_later(policy.quiet_time, self.fire)

    def on_output(self, _text: str) -> None:
        self.last_output = time.monotonic()
        states = self.observer.states
        view = states.cached(self.live.project_id)
        current = None if view is None else view.state
        if not self.policy.has_hooks and current is not AgentState.WORKING:
            self.observer.spawn(
                states.observe_screen(self.live.project_id, AgentState.WORKING), "screen working"
            )
        elif self.policy.has_hooks and current not in WATCHED:
            return
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.policy.quiet_time, self.fire)

    def fire(self) -> None:
        self.timer = None
        if not self.live.terminal.alive:
            return
        remaining = self.last_output + self.policy.quiet_time - time.monotonic()
        if remaining > 0.01:
            self.timer = asyncio.get_running_loop().call_later(remaining, self.fire)
            return
        if self.policy.has_hooks and not self._at_prompt():
            return
        self.observer.spawn(
            self.observer.states.observe_screen(
                self.live.project_id, AgentState.IDLE, reason="output quiet, prompt on screen"
            ),
            "screen idle",
        )

    def _at_prompt(self) -> bool:
        view = self.observer.states.cached(self.live.project_id)
        if view is None or view.state not in WATCHED:
            return False
        lines = self.live.terminal.screen.lines()
        policy = self.policy
        if policy.ready_marker is None or not any(policy.ready_marker in line for line in lines):
            return False
        return not any(
            marker in line
            for line in lines
            for marker in (*policy.busy_markers, *policy.asking_markers)
        )

    def close(self) -> None:
        self.remove()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class ActivityObserver:
    """``SessionObserver``: agent state, bus events and the delivery gate of every session."""

    def __init__(
        self, states: AgentStateService, bus: EventBus, policies: Mapping[str, ScreenPolicy]
    ) -> None:
        self.states = states
        self.bus = bus
        self.policies = policies
        self._tasks = OwnedTasks()
        self._watches: dict[str, _ScreenWatch] = {}

    def spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

    def has_hooks(self, agent: str) -> bool:
        policy = self.policies.get(agent)
        return policy is not None and policy.has_hooks

    async def session_started(self, live: LiveTerminal) -> None:
        live.commands.gate = StateGate(self.states, live.project_id)
        old = self._watches.pop(live.project_id, None)
        if old is not None:
            old.close()
        policy = self.policies.get(live.agent)
        if policy is not None:
            self._watches[live.project_id] = _ScreenWatch(self, live, policy)
        await self.states.started(live.project_id)

    async def session_exited(self, live: LiveTerminal, exit_code: int | None) -> None:
        watch = self._watches.get(live.project_id)
        if watch is not None and watch.live is live:
            watch.close()
            del self._watches[live.project_id]
        await self.states.exited(live.project_id, exit_code)

    def session_event(self, project_id: str, kind: str, **detail: Any) -> None:
        """A history event of a terminal session (started, exited, expired, id changed)."""
        self.bus.publish(f"session_{kind}", project_id, **detail)

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.close()
        self._watches.clear()
        await self._tasks.close()
