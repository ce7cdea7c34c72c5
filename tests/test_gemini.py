"""The gemini profile driving the real Gemini CLI in a PTY, offline against the fake Gemini API."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentpty.agents.capabilities import RunEvent, RunEventKind
from agentpty.agents.gemini import MARKERS, GeminiProfile
from tests.agent_pty import PtyRun
from tests.gemini_world import GeminiWorld, gemini_world
from tests.helpers import SCALE, timeout

#: Each test starts Gemini CLI once or twice; on a loaded machine one start takes 10-40 s.
pytestmark = [pytest.mark.gemini, pytest.mark.timeout(240 * SCALE)]
__all__ = ["gemini_world"]

READY = MARKERS.ready or ""
#: Gemini CLI takes several seconds to start (Node, extensions, settings).
START = 90


async def _first_conversation(world: GeminiWorld, profile: GeminiProfile) -> str:
    """Start Gemini under a fresh id, submit one prompt, return the id."""
    chosen = profile.conversations.new_id()
    launch = profile.launch(cwd=str(world.workspace), conversation_id=chosen)
    assert "--session-id=" + chosen in launch.argv and not launch.resumed
    async with PtyRun(launch, world.workspace) as run:
        await run.wait_screen(READY, wait=START)
        await run.type_prompt("alpha first prompt", READY)
        await run.wait_screen("turn=1")
    return chosen


async def test_first_start_keeps_the_chosen_id(gemini_world: GeminiWorld) -> None:
    """A start with --session-id records the conversation under agentpty's id."""
    profile = gemini_world.profile()
    chosen = await _first_conversation(gemini_world, profile)
    assert profile.conversations.exists(chosen)
    assert gemini_world.api.last_user_text() == "alpha first prompt"


async def test_resume_continues_the_conversation(gemini_world: GeminiWorld) -> None:
    """A second start with the same id resumes it: the model sees turn 2."""
    profile = gemini_world.profile()
    chosen = await _first_conversation(gemini_world, profile)
    launch = profile.launch(cwd=str(gemini_world.workspace), conversation_id=chosen)
    assert launch.resumed and f"--resume={chosen}" in launch.argv
    async with PtyRun(launch, gemini_world.workspace) as run:
        await run.type_prompt("bravo after resume", READY)
        await run.wait_screen("turn=2", wait=START)
    assert gemini_world.api.last_turn() == 2


async def test_vanished_conversation_shows_the_expiry_marker(gemini_world: GeminiWorld) -> None:
    """A conversation deleted between the check and the start shows an expiry marker, exit 42."""
    profile = gemini_world.profile()
    chosen = await _first_conversation(gemini_world, profile)
    launch = profile.launch(cwd=str(gemini_world.workspace), conversation_id=chosen)
    for path in gemini_world.chat_files():
        path.unlink()
    async with PtyRun(launch, gemini_world.workspace) as run:
        assert await run.wait_exit(START) == 42
        screen = run.screen()
    assert any(marker in screen for marker in MARKERS.expired), screen


async def test_two_prompts_in_one_process_are_turns_one_and_two(gemini_world: GeminiWorld) -> None:
    """Two prompts typed into one Gemini process are turns 1 and 2; busy shows in between."""
    profile = gemini_world.profile()
    launch = profile.launch(
        cwd=str(gemini_world.workspace), conversation_id=profile.conversations.new_id()
    )
    async with PtyRun(launch, gemini_world.workspace) as run:
        await run.wait_screen(READY, wait=START)
        await run.type_prompt("charlie one", READY)
        await run.wait_screen("turn=1")
        gemini_world.api.hold_replies()
        await run.type_prompt("delta two", READY)
        await gemini_world.wait_requests(2)
        # The placeholder stays while busy (a TUI redraw may show the busy
        # row a moment before it): ready alone does not mean idle.
        await run.wait_screen(MARKERS.busy[0], READY)
        gemini_world.api.release_replies()
        await run.wait_screen("turn=2")
        await run.wait_gone(MARKERS.busy[0])


async def test_initial_prompt_is_submitted(gemini_world: GeminiWorld) -> None:
    """An initial prompt given to launch() is submitted, even one starting with '-'."""
    profile = gemini_world.profile()
    launch = profile.launch(
        cwd=str(gemini_world.workspace),
        conversation_id=profile.conversations.new_id(),
        initial_prompt="-echo initial",
    )
    async with PtyRun(launch, gemini_world.workspace) as run:
        await run.wait_screen("turn=1", wait=START)
    assert gemini_world.api.last_user_text() == "-echo initial"


async def _headless(
    profile: GeminiProfile, world: GeminiWorld, prompt: str, cid: str
) -> list[RunEvent]:
    launch = profile.headless.launch(cwd=str(world.workspace), prompt=prompt, conversation_id=cid)
    process = await asyncio.create_subprocess_exec(
        *launch.argv,
        cwd=str(world.workspace),
        env=launch.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout(START)):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    events = [profile.headless.parse(json.loads(line)) for line in out.decode().splitlines()]
    return [e for e in events if e is not None]


async def test_id_taken_meanwhile_shows_the_expiry_marker(gemini_world: GeminiWorld) -> None:
    """An id that gained a conversation between the check and the start: marker, exit 42."""
    profile = gemini_world.profile()
    chosen = profile.conversations.new_id()
    launch = profile.launch(cwd=str(gemini_world.workspace), conversation_id=chosen)
    assert f"--session-id={chosen}" in launch.argv
    await _headless(profile, gemini_world, "echo meanwhile", chosen)
    async with PtyRun(launch, gemini_world.workspace) as run:
        assert await run.wait_exit(START) == 42
        screen = run.screen()
    assert "already exists. Use --resume" in screen and chosen in screen


async def test_headless_runs_report_init_message_result(gemini_world: GeminiWorld) -> None:
    """A headless run reports INIT (the chosen id), MESSAGE and RESULT; a second run resumes it."""
    profile = gemini_world.profile()
    chosen = profile.conversations.new_id()
    events = await _headless(profile, gemini_world, "echo headless", chosen)
    assert [e.kind for e in events] == [
        RunEventKind.INIT,
        RunEventKind.MESSAGE,
        RunEventKind.RESULT,
    ]
    assert events[0].conversation_id == chosen and events[1].text == "turn=1"
    assert not events[2].is_error and profile.conversations.exists(chosen)
    again = await _headless(profile, gemini_world, "echo again", chosen)
    assert again[0].conversation_id == chosen and again[1].text == "turn=2"
