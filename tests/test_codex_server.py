"""Codex projects end to end through a real server: the real Codex CLI, offline.

The model is the fake Responses API (``tests/fake_responses_api.py``), which
answers ``turn=N``; the CLI is the pinned npm package (``make codex``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.codex import MARKERS, CodexProfile
from tests.agent_server import (
    agent_server,
    cmdline,
    create_project,
    read_run,
    screen,
    send_text,
    wait_screen,
)
from tests.codex_world import CodexWorld, codex_world, require_codex
from tests.helpers import create_milestone, eventually, make_settings, serve

pytestmark = pytest.mark.codex
__all__ = ["codex_world"]


def server(world: CodexWorld, **overrides: Any) -> Any:
    return agent_server(world.root, world.env, "codex", require_codex(), **overrides)


async def stored_id(running: Any, project: str) -> str | None:
    return (await running.services.store.get_project(project)).agent_session_id


async def first_turn(running: Any, world: CodexWorld, project: str, text: str) -> str:
    """Type the first prompt through the input API; return the id agentpty discovered."""
    async with running.http(wait=120) as http:
        answer = await send_text(http, project, text)
    assert answer["delivered"], answer
    await world.wait_requests(1)
    await wait_screen(running, project, "turn=1")

    async def confirmed() -> str | None:
        # Learnt and seen holding the prompt: agentpty would notice its loss.
        stored = await running.services.store.get_project(project)
        return stored.agent_session_id if stored.confirmed_session_id else None

    return await eventually(confirmed)


async def test_first_prompt_stores_the_discovered_id_and_restart_resumes(
    codex_world: CodexWorld,
) -> None:
    """The id is learnt after the first prompt; a new server resumes it: the model sees turn 2."""
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        assert await stored_id(running, project) is None  # Codex chooses its own id
        found = await first_turn(running, codex_world, project, "alpha first")
        assert found == codex_world.api.last_thread_id()
        assert "--no-daemon" in cmdline(running, project)
    # The first server stopped its agent on the way out; the next one resumes.
    async with server(codex_world) as running:
        async with running.http(wait=120) as http:
            started = (await http.post(f"/api/output-projects/{project}/session")).json()
            assert started["resumed"] is True and started["agent_session_id"] == found
            answer = await send_text(http, project, "bravo second")
        assert answer["delivered"], answer
        await codex_world.wait_requests(2)
        await wait_screen(running, project, "turn=2")
    assert codex_world.api.last_thread_id() == found
    assert codex_world.api.last_turn() == 2
    assert codex_world.api.last_user_text() == "bravo second"


async def test_vanished_conversation_expires_once_and_starts_fresh(
    codex_world: CodexWorld,
) -> None:
    """A deleted rollout: SESSION_EXPIRED on the WebSocket, one expiry, a new learnt id."""
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        old = await first_turn(running, codex_world, project, "remember me")
        async with running.http() as http:
            await http.delete(f"/api/output-projects/{project}/session")
        for path in codex_world.rollouts():
            path.unlink()
        async with running.terminal(project) as term:
            status = await term.recv()
            error = await term.recv_type("error", wait=60)
            assert error["code"] == "SESSION_EXPIRED"
            assert status["expired_agent_session_id"] == old
            assert status["agent_session_id"] is None  # Codex will choose the new one
            async with running.http(wait=120) as http:
                answer = await send_text(http, project, "fresh start")
            assert answer["delivered"], answer
            await codex_world.wait_requests(2)

            async def renewed() -> str | None:
                current = await stored_id(running, project)
                return current if current not in (None, old) else None

            new = await eventually(renewed)
        assert codex_world.api.last_thread_id() == new
        assert codex_world.api.last_turn() == 1
        events = await running.services.store.list_events(project)
        assert [e.kind for e in events].count("expired") == 1


async def test_two_milestones_reach_one_conversation(codex_world: CodexWorld) -> None:
    """Two milestones: the first is Codex's initial prompt, the second its turn 2."""
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        async with running.http(wait=120) as http:
            ids = [await create_milestone(http, project, t) for t in ("one unit", "two unit")]
            first = (await http.post(f"/api/milestones/{ids[0]}/start")).json()
            assert first["status"] == "in_progress", (
                first.get("status_reason"),
                first.get("delivery"),
            )
            await codex_world.wait_requests(1)
            await wait_screen(running, project, "turn=1")

            async def learnt() -> str | None:
                return await stored_id(running, project)

            found = await eventually(learnt)
            second = (await http.post(f"/api/milestones/{ids[1]}/start")).json()
            assert second["status"] == "in_progress", (
                second.get("status_reason"),
                second.get("delivery"),
            )
            await codex_world.wait_requests(2)
        assert cmdline(running, project)[-2:] == ["--", "start one unit"]
    api = codex_world.api
    assert api.last_turn() == 2 and api.last_user_text() == "next two unit"
    assert {r["client_metadata"]["thread_id"] for r in api.requests} == {found}


async def test_refused_command_is_cleared_and_codex_keeps_running(
    codex_world: CodexWorld,
) -> None:
    """An unknown slash command is rejected, cleared from the input box; the next one works."""
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        async with running.http(wait=120) as http:
            refused = await send_text(http, project, "/nosuchcommand")
            assert refused["outcome"] == "rejected", refused
            assert MARKERS.refusal[0] in refused["reason"]
            # Cleared: the ready footer is back, and Codex did not quit.
            await wait_screen(running, project, MARKERS.ready or "")
            live = running.services.sessions.live(project)
            assert live is not None, screen(running, project)
            answer = await send_text(http, project, "after the refusal")
        assert answer["delivered"], answer
        await codex_world.wait_requests(1)
    assert codex_world.api.last_user_text() == "after the refusal"


async def test_long_command_is_submitted_whole(codex_world: CodexWorld) -> None:
    """A 2,000-character command (Codex echoes it as "[Pasted Content …]") arrives whole."""
    text = "long " + "x" * 1995
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        async with running.http(wait=120) as http:
            answer = await send_text(http, project, text)
        assert answer["delivered"], answer
        await codex_world.wait_requests(1)
        await wait_screen(running, project, "turn=1")
    assert codex_world.api.last_user_text() == text


async def test_headless_run_streams_events_and_keeps_the_result(codex_world: CodexWorld) -> None:
    """A headless run: thread.started's id is stored; the record keeps the answer text."""
    async with server(codex_world) as running:
        project = await create_project(running, "codex")
        async with running.http(wait=120) as http:
            events, record = await read_run(http, project, "echo headless")
            stored = await stored_id(running, project)
            assert events[0]["type"] == "thread.started"
            assert events[0]["thread_id"] == stored == record["agent_session_id"]
            assert events[-1]["type"] == "record"
            assert record["status"] == "succeeded", record
            assert record["result"] == "turn=1"
            again_events, again = await read_run(http, project, "echo again")
        assert again["agent_session_id"] == stored and again["result"] == "turn=2"
        assert again_events[0]["thread_id"] == stored


async def test_codex_not_installed_answers_422_with_the_install_command(tmp_path: Path) -> None:
    """Creating a codex project without the CLI: 422 naming the npm install command."""
    settings = make_settings(tmp_path / "data", codex_bin=str(tmp_path / "no-such-codex"))
    async with serve(settings) as running, running.http() as http:
        response = await http.post("/api/output-projects", json={"name": "p", "agent": "codex"})
    assert response.status_code == 422, response.text
    assert "npm install -g @openai/codex" in response.text
    assert isinstance(running.services.projects.profiles["codex"], CodexProfile)
