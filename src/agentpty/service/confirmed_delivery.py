"""Confirmed delivery: a command counts as delivered only when the agent says it got it.

Agents with hooks (Claude Code) confirm with the prompt report of the text
typed (``UserPromptSubmit``); for the others, the echo of the text on the
emulated screen is the confirmation. Outcomes:

- ``delivered``: confirmed;
- ``refused``: the agent answered with a refusal (``agent_words`` is its line on screen);
- ``not_ready``: nothing was typed: the agent never became ready (or exited);
- ``unconfirmed``: typed, but no confirmation came within ``confirm_timeout``.

Typing itself goes through the session's command queue, which holds a
command while the agent waits on a question (its gate), so a command is
never typed into a permission prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from agentpty.service.agent_state import AgentStateService
from agentpty.terminal.delivery import DeliveryOutcome, DeliveryResult

if TYPE_CHECKING:
    from agentpty.service.sessions import LiveSession

__all__ = ["Confirmation", "Delivery", "confirm_delivery"]

#: Characters of the typed text looked for on screen (agents without hooks).
ECHO_PROBE = 40


class Confirmation(StrEnum):
    DELIVERED = "delivered"
    REFUSED = "refused"
    NOT_READY = "not_ready"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class Delivery:
    outcome: Confirmation
    reason: str = ""
    #: The agent's own words: its refusal line, or the prompt it reported.
    agent_words: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Confirmation.DELIVERED

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "reason": self.reason,
            "agent_words": self.agent_words,
        }


async def confirm_delivery(
    states: AgentStateService,
    project_id: str,
    text: str,
    typing: Callable[[], Awaitable[tuple[LiveSession, DeliveryResult]]],
    *,
    has_hooks: bool,
    confirm_timeout: float,
) -> Delivery:
    """Run ``typing`` (which types ``text`` into the project's session) and await confirmation.

    The expectation is registered before typing starts: the agent's report
    can arrive before the typing returns.
    """
    expected = states.expect_prompt(project_id, text) if has_hooks else None
    try:
        live, result = await typing()
        if result.outcome is DeliveryOutcome.REJECTED:
            return Delivery(Confirmation.REFUSED, result.reason, _refusal_line(live, result))
        if not result.ok:
            return Delivery(Confirmation.NOT_READY, result.reason or str(result.outcome))
        if expected is None:
            return _echo(live, text)
        try:
            async with asyncio.timeout(confirm_timeout):
                prompt = await asyncio.shield(expected)
        except (TimeoutError, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            if expected.cancelled() and not live.terminal.alive:
                return Delivery(Confirmation.NOT_READY, "the agent exited before confirming")
            return Delivery(
                Confirmation.UNCONFIRMED,
                f"typed, but the agent did not report the prompt within {confirm_timeout:g} s",
            )
        return Delivery(Confirmation.DELIVERED, "confirmed by the agent's prompt hook", prompt)
    finally:
        if expected is not None and not expected.done():
            expected.cancel()


def _refusal_line(live: LiveSession, result: DeliveryResult) -> str | None:
    """The line on screen holding the refusal marker (the agent's words), last one first."""
    markers = live.commands.policy.rejection_markers
    for line in reversed(live.terminal.screen.lines()):
        if any(marker in line for marker in markers):
            return line.strip(" ●")
    return result.reason or None


def _echo(live: LiveSession, text: str) -> Delivery:
    probe = text.strip().splitlines()[0][:ECHO_PROBE] if text.strip() else ""
    if probe and probe in live.terminal.screen.text():
        return Delivery(Confirmation.DELIVERED, "echoed on screen")
    return Delivery(Confirmation.UNCONFIRMED, "typed, but its echo is not on screen")
