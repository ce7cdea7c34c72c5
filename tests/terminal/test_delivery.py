"""watch_outcome on real PTYs: markers are read from the screen, not the byte stream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from agentpty.terminal.delivery import watch_outcome
from agentpty.terminal.session import TerminalSession
from tests.helpers import timeout

ENV = {"PATH": os.environ["PATH"], "TERM": "xterm-256color"}

#: Draws "Unknown command" the way a cell-diffing TUI does when the cells
#: "mm" already hold the right letters: the stream never holds the words whole.
DIFF_DRAWN = r"printf 'xxxxxxxxxxmmxxx\r'; printf 'Unknown co\033[2Cand\r\n'"

Start = Callable[[str], TerminalSession]


@pytest.fixture
async def program() -> AsyncIterator[Start]:
    """Start ``sh -c script`` sessions; every one is stopped at the end, even on failure."""
    sessions: list[TerminalSession] = []

    def start(script: str) -> TerminalSession:
        session = TerminalSession("k", ["/bin/sh", "-c", script], cwd="/", env=ENV)
        session.start()
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        await session.stop()


async def answer(session: TerminalSession, watch: Coroutine[Any, Any, str | None]) -> str | None:
    """Start ``watch``, then type a line (the "command"), and return what the watch saw."""
    task = asyncio.ensure_future(watch)
    await asyncio.sleep(0)  # one step: the watch takes its baseline before the command
    session.send_input("go\n")
    async with asyncio.timeout(timeout(10)):
        return await task


async def test_marker_drawn_around_a_cursor_jump_is_seen(program: Start) -> None:
    """A refusal whose letters never arrive together in the stream is still a refusal."""
    session = program(f"read go; {DIFF_DRAWN}; sleep 30")
    outcome = await answer(session, watch_outcome(session, ["Unknown command"], [], 30))
    assert outcome == "Unknown command"


async def test_old_marker_on_screen_counts_only_when_it_shows_again(program: Start) -> None:
    """An old refusal still on screen is not the answer to a new command; a new one is."""
    session = program(f"{DIFF_DRAWN}; read go; echo thinking; read go; {DIFF_DRAWN}; sleep 30")
    subscriber, _ = session.subscribe()
    async with asyncio.timeout(timeout(10)):
        while "and" not in (await subscriber.get()).text:
            pass
    assert await answer(session, watch_outcome(session, ["Unknown command"], [], 0.5)) is None
    again = await answer(session, watch_outcome(session, ["Unknown command"], [], 30))
    assert again == "Unknown command"


async def test_acceptance_marker_ends_the_watch(program: Start) -> None:
    """The agent getting busy ends the watch without a refusal (long before the window)."""
    session = program(r"read go; printf 'xxxxxxxi\r'; printf 'esc to \033[1Cnterrupt'; sleep 30")
    watch = watch_outcome(session, ["Unknown command"], ["esc to interrupt"], 3600)
    assert await answer(session, watch) is None


async def test_busy_line_drawn_and_erased_at_once_ends_the_watch(program: Start) -> None:
    """A fast answer's busy line may never be on screen when checked: the stream counts."""
    session = program(r"read go; printf 'esc to interrupt\r\033[2K'; sleep 30")
    watch = watch_outcome(session, ["Unknown command"], ["esc to interrupt"], 3600)
    assert await answer(session, watch) is None


async def test_refusal_printed_just_before_exit_counts(program: Start) -> None:
    """An agent that refuses and exits at once still reports the refusal."""
    session = program(f"read go; {DIFF_DRAWN}")
    outcome = await answer(session, watch_outcome(session, ["Unknown command"], [], 3600))
    assert outcome == "Unknown command"
