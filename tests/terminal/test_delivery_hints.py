"""CommandQueue honouring an agent's DeliveryHints, on a real PTY.

The agent is a stand-in: a small raw-mode input box (``INPUT_BOX``) that
behaves like the real CLIs' in the ways the hints are about (docs/codex.md,
docs/gemini.md): ``READY>`` shows only while the box is empty, an unknown
``/command`` is refused and left in the box, Ctrl-C clears a box holding
text and quits on an empty one, and (with ``drop``) the first Enter is
ignored, as Gemini CLI sometimes does under load.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentpty.terminal.delivery import CommandQueue, DeliveryOutcome, ReadyPolicy, input_box_text
from agentpty.terminal.screen import ScreenModel
from agentpty.terminal.session import TerminalSession
from tests.helpers import timeout

INPUT_BOX = r"""
import os, sys, tty
tty.setraw(0)
drop = sys.argv[1:] == ["drop"]
box = ""
def out(text):
    os.write(1, text.encode())
def draw():
    out("\r\x1b[2K" + ("> " + box if box else "READY>"))
draw()
while True:
    data = os.read(0, 4096)
    if not data:
        break
    for ch in data.decode().replace("\x1b[200~", "").replace("\x1b[201~", ""):
        if ch == "\r":
            if drop:
                drop = False
                out("\r\n(dropped)\r\n")
            elif not box:
                out("\r\n(empty enter)\r\n")
            elif box.startswith("/"):
                out("\r\nUnknown command " + box + "\r\n")
            else:
                out("\r\ngot:" + box + "\r\n")
                box = ""
            draw()
        elif ch == "\x03":
            if not box:
                out("\r\nquit\r\n")
                sys.exit(0)
            box = ""
            draw()
        else:
            box += ch
            draw()
"""

ENV = {"PATH": os.environ["PATH"], "TERM": "xterm-256color"}


def policy(**hints: Any) -> ReadyPolicy:
    values: dict[str, Any] = {
        "marker": "READY>",
        "rejection_markers": ("Unknown command",),
        "timeout": timeout(20),
        "submit_pause": 0.05,
        # The stand-in refuses at once; every accepted command waits this out.
        "rejection_window": timeout(1),
        **hints,
    }
    return ReadyPolicy(**values)


def input_box(*args: str) -> TerminalSession:
    session = TerminalSession("hints", [sys.executable, "-c", INPUT_BOX, *args], cwd="/", env=ENV)
    session.start()
    return session


async def wait_screen(session: TerminalSession, text: str) -> None:
    """Wait until ``text`` is on the screen (tests only: re-checks on each output)."""
    changed = asyncio.Event()
    remove = session.add_output_listener(lambda _text: changed.set())
    try:
        async with asyncio.timeout(timeout(10)):
            while text not in session.screen.text():
                changed.clear()
                await changed.wait()
    finally:
        remove()


async def test_dropped_enter_is_pressed_once_more() -> None:
    """confirm_submit: an Enter that shows nothing within the window is pressed again."""
    session = input_box("drop")
    queue = CommandQueue(session, policy(confirm_submit=True, confirm_window=1.0))
    result = await queue.deliver("hello")
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    await wait_screen(session, "got:hello")
    assert session.screen.text().count("(dropped)") == 1


async def test_taken_enter_is_not_pressed_again() -> None:
    """confirm_submit: a submission that shows (the box emptied) gets no second Enter."""
    session = input_box()
    queue = CommandQueue(session, policy(confirm_submit=True, confirm_window=timeout(5)))
    for text in ("one", "two"):
        assert (await queue.deliver(text)).ok
    await wait_screen(session, "got:two")
    assert "(empty enter)" not in session.screen.text()


async def test_refused_command_left_in_the_box_is_cleared() -> None:
    """clear_refused: the refused text is cleared (not quitting); the next command works."""
    session = input_box()
    queue = CommandQueue(session, policy(clear_refused="\x03"))
    refused = await queue.deliver("/nosuch")
    assert refused.outcome is DeliveryOutcome.REJECTED, refused
    result = await queue.deliver("after")
    assert result.ok, result
    await wait_screen(session, "got:after")
    assert session.alive and "quit" not in session.screen.text()


async def test_without_the_hint_a_refused_command_blocks_the_box() -> None:
    """Without clear_refused the refused text stays: the next command times out unready."""
    session = input_box()
    queue = CommandQueue(session, policy(timeout=1.0))
    assert (await queue.deliver("/nosuch")).outcome is DeliveryOutcome.REJECTED
    assert (await queue.deliver("after")).outcome is DeliveryOutcome.TIMED_OUT


#: A stand-in that, like Claude Code, can tell a paste from typing: it keeps
#: the largest single read and whether paste brackets came, and reports both
#: on Enter (it draws nothing else, so long commands do not wrap the screen).
READ_SIZES = r"""
import os, sys, tty
tty.setraw(0)
box, largest, bracketed = "", 0, False
os.write(1, b"READY>")
while True:
    data = os.read(0, 65536).decode()
    if not data:
        break
    text, enter, _ = data.partition("\r")
    largest = max(largest, len(text))
    bracketed = bracketed or "\x1b[200~" in text
    box += text.replace("\x1b[200~", "").replace("\x1b[201~", "")
    if enter:
        report = f"\r\nlen={len(box)} largest={largest} bracketed={bracketed}\r\n"
        os.write(1, report.encode() + b"READY>")
        box, largest, bracketed = "", 0, False
"""


async def test_long_slash_command_is_typed_in_pieces() -> None:
    """type_slash_commands: a 1,000-character slash command arrives typed, never as one paste."""
    session = TerminalSession("pieces", [sys.executable, "-c", READ_SIZES], cwd="/", env=ENV)
    session.start()
    try:
        hints = {"type_slash_commands": 64, "typed_over": 500}
        queue = CommandQueue(session, policy(rejection_markers=(), **hints))
        command = "/gsd:new-milestone " + "x" * 981
        assert (await queue.deliver(command)).ok
        await wait_screen(session, "len=1000 ")
        report = session.screen.text().split("len=1000 ", 1)[1].split()
        largest = int(report[0].removeprefix("largest="))
        # Pieces may merge on a loaded machine; all of them at once would be a paste.
        assert 64 <= largest < 1000, report
        assert report[1] == "bracketed=False", report
        # Prose (not a slash command) is still pasted, in one bracketed write,
        # and so is a short slash command.
        assert (await queue.deliver("plain " + "y" * 994)).ok
        await wait_screen(session, "bracketed=True")
        assert (await queue.deliver("/short command")).ok
        await wait_screen(session, "len=14 largest=26 bracketed=True")  # 12 bytes of brackets
    finally:
        await session.stop("test over")


RULE = "─" * 80


def claude_screen(box_rows: list[str]) -> list[str]:
    """Claude Code's input box as its 80-column screen shows it (rows CRLF-joined)."""
    screen = ScreenModel(12, 80)
    rows = ["❯ earlier prompt", "", RULE, *box_rows, RULE, "  ? for shortcuts"]
    screen.append("\r\n".join(rows).encode())
    return screen.lines()


def test_a_wrapped_command_reads_whole_from_the_input_box() -> None:
    """A command wider than the box wraps below the marker; it still counts as in the box.

    Seen under load: ``/gsd:new-project .milestones/<id>/MILESTONE-CONTEXT.md``
    (78 characters) wrapped after the command name and its Enter was lost;
    reading only the marker's row missed it, so Enter was never pressed again.
    """
    path = ".milestones/b5a92e5a24ef460f98d76dd7cd1cef89/MILESTONE-CONTEXT.md"
    lines = claude_screen(["❯ /gsd:new-project", f"  {path}"])
    assert input_box_text(lines, "❯") == f"/gsd:new-project {path}"


def test_an_empty_input_box_reads_empty_and_stops_at_its_rule() -> None:
    lines = claude_screen(["❯ "])
    assert input_box_text(lines, "❯") == ""
    assert input_box_text(lines, "no such marker") is None


def test_a_bordered_box_reads_without_its_borders() -> None:
    """Gemini CLI draws a rounded border around its box."""
    screen = ScreenModel(6, 40)
    rows = ["╭" + "─" * 38 + "╮", "│ > first half of a long    │", "│   command                │"]
    screen.append("\r\n".join([*rows, "╰" + "─" * 38 + "╯"]).encode())
    assert input_box_text(screen.lines(), "> ") == "first half of a long command"
