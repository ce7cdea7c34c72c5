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
from agentpty.terminal.delivery import DeliveryOutcome, DeliveryResult, compact

if TYPE_CHECKING:
    from agentpty.service.sessions import LiveTerminal

__all__ = ["Confirmation", "Delivery", "confirm_delivery"]

#: Characters of the typed text looked for on screen (its echo).
ECHO_PROBE = 40
#: How often, at most, the screen is examined for a refusal while output streams in.
REFUSAL_CHECK_INTERVAL = 0.1
#: While no confirmation comes, a command still in the input box this long
#: after Enter gets Enter once more (agents with ``resubmit_lost_enter``), twice at most.
RESUBMIT_AFTER = 4.0
RESUBMITS = 2


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
    states: AgentStateService | None,
    project_id: str,
    text: str,
    typing: Callable[[], Awaitable[tuple[LiveTerminal, DeliveryResult, bool]]],
    *,
    has_hooks: bool,
    confirm_timeout: float,
) -> Delivery:
    """Run ``typing`` (which delivers ``text`` into the project's session) and await confirmation.

    ``typing`` returns the session that got the text, the result, and whether
    the text was typed (False: passed on the agent's command line as its
    initial prompt, where there is no echo to look for; without hooks, the
    absence of a refusal is then all the confirmation there is).

    The expectation is registered before typing starts: the agent's report
    can arrive before the typing returns.
    """
    expected = states.expect_prompt(project_id, text) if has_hooks and states is not None else None
    try:
        live, result, typed = await typing()
        if result.outcome is DeliveryOutcome.REJECTED:
            return Delivery(Confirmation.REFUSED, result.reason, _refusal_line(live, result))
        if not result.ok:
            return Delivery(Confirmation.NOT_READY, result.reason or str(result.outcome))
        if expected is None and not typed:
            return Delivery(
                Confirmation.DELIVERED, "passed on the agent's command line; no refusal seen"
            )
        return await _await_confirmation(live, text, expected, confirm_timeout)
    finally:
        if expected is not None and not expected.done():
            expected.cancel()


async def _await_confirmation(
    live: LiveTerminal, text: str, expected: asyncio.Future[str] | None, confirm_timeout: float
) -> Delivery:
    """Wait for the confirmation, a refusal under the command's echo, or the process exit.

    The confirmation is the prompt report (``expected``) or, for an agent
    without hooks (``expected`` None), the echo of the text on screen, which
    a TUI may draw a moment after the typing returned: the screen is read
    again as output arrives. A refusal can come after the typing's own
    watch ended (a loaded machine): it still counts when it shows below the
    echo of this command.
    """
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[Delivery] = loop.create_future()
    check: asyncio.TimerHandle | None = None

    def decide(delivery: Delivery) -> None:
        if not decided.done():
            decided.set_result(delivery)

    def examine() -> None:
        nonlocal check
        check = None
        words = _refusal_below_echo(live, text)
        if words is not None:
            decide(Delivery(Confirmation.REFUSED, f"the agent answered {words!r}", words))
        elif expected is None:
            echo = _echo(live, text)
            if echo is not None:
                decide(echo)

    def on_output(_text: str) -> None:
        nonlocal check
        if check is None:
            check = loop.call_later(REFUSAL_CHECK_INTERVAL, examine)

    def on_exit(_code: int) -> None:
        examine()
        decide(Delivery(Confirmation.NOT_READY, "the agent exited before confirming"))

    def on_prompt(done: asyncio.Future[str]) -> None:
        if not done.cancelled():
            decide(
                Delivery(
                    Confirmation.DELIVERED, "confirmed by the agent's prompt hook", done.result()
                )
            )

    async def resubmit_while_stuck() -> None:
        for _ in range(RESUBMITS):
            await asyncio.sleep(RESUBMIT_AFTER)
            await live.commands.press_enter_if_stuck(text)

    if expected is not None:
        expected.add_done_callback(on_prompt)
    remove_output = live.terminal.add_output_listener(on_output)
    remove_exit = live.terminal.add_exit_callback(on_exit)
    resubmitter = (
        asyncio.ensure_future(resubmit_while_stuck())
        if live.commands.policy.resubmit_lost_enter
        else None
    )
    examine()
    if not live.terminal.alive:
        on_exit(live.terminal.exit_code or 0)
    try:
        async with asyncio.timeout(confirm_timeout):
            return await decided
    except TimeoutError:
        missing = (
            "the agent did not report the prompt"
            if expected is not None
            else "its echo did not show"
        )
        return Delivery(
            Confirmation.UNCONFIRMED, f"typed, but {missing} within {confirm_timeout:g} s"
        )
    finally:
        if resubmitter is not None:
            resubmitter.cancel()
        if expected is not None:
            expected.remove_done_callback(on_prompt)
        remove_output()
        remove_exit()
        if check is not None:
            check.cancel()


def _refusal_below_echo(live: LiveTerminal, text: str) -> str | None:
    """A refusal of ``text`` on screen: a refusal line naming its command, or below its echo.

    Claude Code answers an unknown slash command with ``Unknown command:
    /name`` and may not echo the command itself.
    """
    markers = live.commands.policy.rejection_markers
    probe = _probe(text)
    if not markers or not probe:
        return None
    lines = live.terminal.screen.lines()
    name = probe.split()[0] if probe.startswith("/") else None
    echoed = [i for i, line in enumerate(lines) if probe in line]
    below = lines[echoed[-1] + 1 :] if echoed else []
    for line in below if name is None else lines:
        if any(marker in line for marker in markers) and (name is None or name in line):
            return line.strip(" ●")
    return None


def _probe(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0][:ECHO_PROBE] if stripped else ""


def _refusal_line(live: LiveTerminal, result: DeliveryResult) -> str | None:
    """The line on screen holding the refusal marker (the agent's words), last one first."""
    markers = live.commands.policy.rejection_markers
    for line in reversed(live.terminal.screen.lines()):
        if any(marker in line for marker in markers):
            return line.strip(" ●")
    return result.reason or None


def _echo(live: LiveTerminal, text: str) -> Delivery | None:
    """DELIVERED when the text's echo (or the agent's paste placeholder) is on screen.

    Compared without whitespace and box-drawing characters: a TUI wraps a
    long echo at its width, often inside a bordered box (Gemini CLI), so
    the probe may be cut across rows.
    """
    screen = compact(live.terminal.screen.text())
    probe = compact(_probe(text))
    if probe and probe in screen:
        return Delivery(Confirmation.DELIVERED, "echoed on screen")
    paste_echo = live.commands.policy.paste_echo
    if paste_echo and compact(paste_echo) in screen:
        return Delivery(Confirmation.DELIVERED, "echoed on screen as a paste")
    return None
