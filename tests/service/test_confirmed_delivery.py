"""confirm_delivery for an agent without hooks: the echo is the confirmation.

The agent is a stand-in on a real PTY (``BOXED_ECHO``): after Enter it waits
a moment, then draws what it got inside a narrow bordered box, wrapped at the
box's width, as Gemini CLI draws a submitted prompt. The delivery code reads
the real screen model of that terminal session.
"""

from __future__ import annotations

import os
import sys

from agentpty.service.confirmed_delivery import Confirmation, confirm_delivery
from agentpty.service.sessions import LiveTerminal
from agentpty.terminal.delivery import (
    CommandQueue,
    DeliveryOutcome,
    DeliveryResult,
    ReadyPolicy,
    wait_ready,
)
from agentpty.terminal.session import TerminalSession
from tests.helpers import timeout

BOXED_ECHO = r"""
import os, sys, time, tty
tty.setraw(0)
delay, width, swallow = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "swallow"
box = ""
os.write(1, b"READY>")
while True:
    data = os.read(0, 4096)
    if not data:
        break
    for ch in data.decode():
        if ch != "\r":
            box += ch
            continue
        if not swallow:
            time.sleep(delay)
            rows = [box[start : start + width].ljust(width) for start in range(0, len(box), width)]
            drawn = ["\u256d" + "\u2500" * (width + 2) + "\u256e"]
            drawn += ["\u2502 " + row + " \u2502" for row in rows]
            drawn += ["\u2570" + "\u2500" * (width + 2) + "\u256f", ""]
            os.write(1, ("\r\n" + "\r\n".join(drawn)).encode())
        box = ""
        os.write(1, b"READY>")
"""

ENV = {"PATH": os.environ["PATH"], "TERM": "xterm-256color"}
#: Longer than the box and than the echo probe, with a word cut by the wrap.
TEXT = "please migrate the billing module to the new ledger API"


async def deliver(*args: str, confirm_timeout: float) -> tuple[Confirmation, str]:
    terminal = TerminalSession("echo", [sys.executable, "-c", BOXED_ECHO, *args], cwd="/", env=ENV)
    terminal.start()
    policy = ReadyPolicy(marker="READY>", timeout=timeout(20))
    live = LiveTerminal(
        project_id="p",
        agent="stand-in",
        terminal=terminal,
        commands=CommandQueue(terminal, policy),
        conversation_id=None,
        resumed=False,
    )

    async def typing() -> tuple[LiveTerminal, DeliveryResult, bool]:
        # Before the prompt, the PTY is not raw yet and the kernel would echo.
        assert await wait_ready(terminal, policy)
        terminal.send_input(TEXT + "\r")
        return live, DeliveryResult(DeliveryOutcome.DELIVERED), True

    try:
        delivery = await confirm_delivery(
            None, "p", TEXT, typing, has_hooks=False, confirm_timeout=confirm_timeout
        )
        return delivery.outcome, delivery.reason
    finally:
        await terminal.stop()


async def test_echo_drawn_late_and_wrapped_in_a_box_confirms() -> None:
    # The echo comes 0.5 s after typing returned, cut into rows of 17 characters
    # with a border between them: both used to read as "unconfirmed".
    outcome, reason = await deliver("0.5", "17", "echo", confirm_timeout=timeout(15))
    assert (outcome, reason) == (Confirmation.DELIVERED, "echoed on screen")


async def test_no_echo_is_unconfirmed_after_the_timeout() -> None:
    outcome, reason = await deliver("0", "17", "swallow", confirm_timeout=1.0)
    assert outcome is Confirmation.UNCONFIRMED
    assert reason == "typed, but its echo did not show within 1 s"
