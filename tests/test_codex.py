"""The codex profile driving the real Codex CLI in a PTY, offline against the fake Responses API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentpty.agents.base import Launch
from agentpty.agents.capabilities import RunEvent, RunEventKind
from agentpty.agents.codex import MARKERS, CodexProfile
from agentpty.domain.models import utcnow
from tests.agent_pty import PtyRun
from tests.codex_world import CodexWorld, codex_world
from tests.helpers import timeout

pytestmark = pytest.mark.codex
__all__ = ["codex_world"]

READY = MARKERS.ready or ""


async def _first_conversation(world: CodexWorld, profile: CodexProfile) -> str:
    """Start Codex, submit one prompt, return the conversation id discovered afterwards."""
    since = utcnow()
    launch = profile.launch(cwd=str(world.workspace), conversation_id=None)
    async with PtyRun(launch, world.workspace) as run:
        await run.type_prompt("alpha first prompt", READY)
        await run.wait_screen("turn=1")
        await world.wait_requests(1)
    found = profile.conversations.discover(str(world.workspace), since)
    assert found is not None, f"no rollout discovered among {world.rollouts()}"
    return found


async def test_first_start_discovers_a_valid_conversation(codex_world: CodexWorld) -> None:
    """After the first prompt the conversation id is discovered, valid, and the one Codex used."""
    profile = codex_world.profile()
    found = await _first_conversation(codex_world, profile)
    assert profile.conversations.valid_id(found)
    assert found == codex_world.api.last_thread_id()
    assert profile.conversations.exists(found)
    assert codex_world.api.last_user_text() == "alpha first prompt"


async def test_resume_continues_the_conversation(codex_world: CodexWorld) -> None:
    """A second start with the discovered id resumes it: the model sees turn 2."""
    profile = codex_world.profile()
    found = await _first_conversation(codex_world, profile)
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=found)
    assert launch.resumed
    async with PtyRun(launch, codex_world.workspace) as run:
        await run.type_prompt("bravo after resume", READY)
        await run.wait_screen("turn=2")
    assert codex_world.api.last_thread_id() == found
    assert codex_world.api.last_turn() == 2


async def test_vanished_conversation_shows_the_expiry_marker(codex_world: CodexWorld) -> None:
    """A rollout deleted between the check and the start: an expiry marker shows, exit 1."""
    profile = codex_world.profile()
    found = await _first_conversation(codex_world, profile)
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=found)
    assert launch.resumed
    for path in codex_world.rollouts():
        path.unlink()
    assert not profile.conversations.exists(found)
    # Checked again now, the id would start a fresh conversation instead.
    assert not profile.launch(cwd=str(codex_world.workspace), conversation_id=found).resumed
    async with PtyRun(launch, codex_world.workspace) as run:
        assert await run.wait_exit() == 1
        screen = run.screen()
    assert any(marker in screen for marker in MARKERS.expired), screen
    assert found in screen


async def test_unknown_conversation_shows_the_expiry_marker(codex_world: CodexWorld) -> None:
    """`codex resume` of an id Codex never had prints an expiry marker and exits 1."""
    profile = codex_world.profile()
    unknown = "01a23144-0000-7000-8000-000000000000"
    # The profile never resumes an id without a rollout; the CLI's answer
    # matters when one vanishes during the start.
    fresh = profile.launch(cwd=str(codex_world.workspace), conversation_id=unknown)
    assert not fresh.resumed
    launch = Launch(argv=[fresh.argv[0], "resume", "--no-daemon", unknown], env=fresh.env)
    async with PtyRun(launch, codex_world.workspace) as run:
        assert await run.wait_exit() == 1
        screen = run.screen()
    assert "No saved session found with ID" in screen and unknown in screen


async def test_two_prompts_in_one_process_are_turns_one_and_two(codex_world: CodexWorld) -> None:
    """Two prompts typed into one Codex process reach one conversation as turns 1 and 2."""
    profile = codex_world.profile()
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=None)
    async with PtyRun(launch, codex_world.workspace) as run:
        await run.type_prompt("charlie one", READY)
        await run.wait_screen("turn=1")
        await run.type_prompt("delta two", READY)
        await run.wait_screen("turn=2")
    requests = codex_world.api.requests
    assert len(requests) == 2
    assert {codex_world.api.last_thread_id()} == {
        r["client_metadata"]["thread_id"] for r in requests
    }


async def test_busy_marker_shows_while_a_turn_runs(codex_world: CodexWorld) -> None:
    """While the model has not answered the busy marker shows; it goes when the turn ends."""
    profile = codex_world.profile()
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=None)
    codex_world.api.hold_replies()
    async with PtyRun(launch, codex_world.workspace) as run:
        await run.type_prompt("echo held", READY)
        await codex_world.wait_requests(1)
        busy = await run.wait_screen(MARKERS.busy[0])
        assert READY in busy  # the composer's footer stays: ready alone does not mean idle
        codex_world.api.release_replies()
        await run.wait_screen("turn=1")
        await run.wait_gone(MARKERS.busy[0])


async def test_markers_on_a_small_terminal(codex_world: CodexWorld) -> None:
    """At 24x80 the ready marker shows and an unknown slash command shows the refusal marker."""
    profile = codex_world.profile()
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=None)
    async with PtyRun(launch, codex_world.workspace, rows=24, cols=80) as run:
        await run.type_prompt("/nosuchcommand", READY, confirm=False)
        screen = await run.wait_screen(MARKERS.refusal[0])
        # The refused command stays in the input box, so the footer stays hidden.
        assert "› /nosuchcommand" in screen and READY not in screen
    assert codex_world.api.requests == []


async def test_trusted_git_workspace_starts_without_a_dialog(codex_world: CodexWorld) -> None:
    """A git repository trusted in config.toml opens straight at the composer."""
    process = await asyncio.create_subprocess_exec("git", "init", "-q", str(codex_world.workspace))
    assert await process.wait() == 0
    profile = codex_world.profile()
    launch = profile.launch(cwd=str(codex_world.workspace), conversation_id=None)
    async with PtyRun(launch, codex_world.workspace) as run:
        await run.type_prompt("echo in a repository", READY)
        await run.wait_screen("turn=1")
        assert "Trust this folder" not in run.screen()


async def _headless(profile: CodexProfile, world: CodexWorld, prompt: str, cid: str | None) -> Any:
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
        async with asyncio.timeout(timeout(60)):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    events = [profile.headless.parse(json.loads(line)) for line in out.decode().splitlines()]
    return [e for e in events if e is not None]


async def test_headless_runs_report_init_message_result(codex_world: CodexWorld) -> None:
    """A headless run reports INIT (its id), MESSAGE and RESULT; a second run resumes it."""
    profile = codex_world.profile()
    events: list[RunEvent] = await _headless(profile, codex_world, "echo headless", None)
    kinds = [e.kind for e in events]
    assert kinds[0] is RunEventKind.INIT and kinds[-1] is RunEventKind.RESULT
    found = events[0].conversation_id
    assert found is not None and profile.conversations.exists(found)
    assert any(e.text == "turn=1" for e in events if e.kind is RunEventKind.MESSAGE)
    again: list[RunEvent] = await _headless(profile, codex_world, "echo again", found)
    assert again[0].conversation_id == found
    assert any(e.text == "turn=2" for e in again if e.kind is RunEventKind.MESSAGE)
