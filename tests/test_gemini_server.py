"""Gemini projects end to end through a real server: the real Gemini CLI, offline.

The model is the fake Gemini API (``tests/fake_gemini_api.py``), which
answers ``turn=N``; the CLI is the pinned npm package (``make gemini``).
Gemini CLI starts slowly (10-40 s on a loaded machine): waits are generous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.gemini import GeminiProfile
from tests.agent_server import (
    agent_server,
    cmdline,
    create_project,
    read_run,
    send_text,
    wait_screen,
)
from tests.gemini_world import GeminiWorld, gemini_world, require_gemini
from tests.helpers import SCALE, create_milestone, eventually, make_settings, serve

pytestmark = [pytest.mark.gemini, pytest.mark.timeout(300 * SCALE)]
__all__ = ["gemini_world"]

#: Seconds (scaled) for a start and a first answer.
START = 90


def server(world: GeminiWorld, **overrides: Any) -> Any:
    return agent_server(world.root, world.env, "gemini", require_gemini(), **overrides)


async def stored_id(running: Any, project: str) -> str | None:
    return (await running.services.store.get_project(project)).agent_session_id


async def first_turn(running: Any, world: GeminiWorld, project: str, text: str) -> str:
    """Type the first prompt through the input API; return the id once confirmed."""
    async with running.http(wait=240) as http:
        answer = await send_text(http, project, text)
    assert answer["delivered"], answer
    await world.wait_requests(1, wait=START)
    await wait_screen(running, project, "turn=1", wait=START)

    async def confirmed() -> str | None:
        stored = await running.services.store.get_project(project)
        return stored.agent_session_id if stored.confirmed_session_id else None

    return await eventually(confirmed)


async def test_first_start_uses_the_stored_id_and_restart_resumes(
    gemini_world: GeminiWorld,
) -> None:
    """The id is chosen and stored before the start; a new server resumes it: turn 2."""
    async with server(gemini_world) as running:
        project = await create_project(running, "gemini")
        async with running.http(wait=120) as http:
            started = (await http.post(f"/api/output-projects/{project}/session")).json()
        chosen = await stored_id(running, project)
        assert chosen is not None and started["agent_session_id"] == chosen
        assert f"--session-id={chosen}" in cmdline(running, project)
        assert await first_turn(running, gemini_world, project, "alpha first") == chosen
    # The first server stopped its agent on the way out; the next one resumes.
    async with server(gemini_world) as running:
        async with running.http(wait=240) as http:
            started = (await http.post(f"/api/output-projects/{project}/session")).json()
            assert started["resumed"] is True and started["agent_session_id"] == chosen
            assert f"--resume={chosen}" in cmdline(running, project)
            answer = await send_text(http, project, "bravo second")
        assert answer["delivered"], answer
        await gemini_world.wait_requests(2, wait=START)
        await wait_screen(running, project, "turn=2", wait=START)
    assert gemini_world.api.last_turn() == 2
    assert gemini_world.api.last_user_text() == "bravo second"


async def test_vanished_conversation_expires_once_and_starts_fresh(
    gemini_world: GeminiWorld,
) -> None:
    """A deleted chat file: SESSION_EXPIRED on the WebSocket, one expiry, a fresh id."""
    async with server(gemini_world) as running:
        project = await create_project(running, "gemini")
        old = await first_turn(running, gemini_world, project, "remember me")
        async with running.http() as http:
            await http.delete(f"/api/output-projects/{project}/session")
        for path in gemini_world.chat_files():
            path.unlink()
        async with running.terminal(project) as term:
            status = await term.recv()
            error = await term.recv_type("error", wait=60)
            assert error["code"] == "SESSION_EXPIRED"
            new = status["agent_session_id"]
            assert new and new != old and status["expired_agent_session_id"] == old
            assert f"--session-id={new}" in cmdline(running, project)
            async with running.http(wait=240) as http:
                answer = await send_text(http, project, "fresh start")
            assert answer["delivered"], answer
            await gemini_world.wait_requests(2, wait=START)
            await wait_screen(running, project, "turn=1", wait=START)
        assert gemini_world.api.last_turn() == 1
        assert await stored_id(running, project) == new
        events = await running.services.store.list_events(project)
        assert [e.kind for e in events].count("expired") == 1


async def test_two_milestones_reach_one_conversation(gemini_world: GeminiWorld) -> None:
    """Two milestones: the first is Gemini's initial prompt, the second its turn 2."""
    async with server(gemini_world) as running:
        project = await create_project(running, "gemini")
        async with running.http(wait=240) as http:
            ids = [await create_milestone(http, project, t) for t in ("one unit", "two unit")]
            first = (await http.post(f"/api/milestones/{ids[0]}/start")).json()
            assert first["status"] == "in_progress", (
                first.get("status_reason"),
                first.get("delivery"),
            )
            assert "--prompt-interactive=start one unit" in cmdline(running, project)
            await gemini_world.wait_requests(1, wait=START)
            await wait_screen(running, project, "turn=1", wait=START)
            second = (await http.post(f"/api/milestones/{ids[1]}/start")).json()
            assert second["status"] == "in_progress", (
                second.get("status_reason"),
                second.get("delivery"),
            )
            await gemini_world.wait_requests(2, wait=START)
    api = gemini_world.api
    assert api.last_turn() == 2 and api.last_user_text() == "next two unit"


async def test_headless_run_streams_events_and_keeps_the_result(
    gemini_world: GeminiWorld,
) -> None:
    """A headless run under the stored id: init, message, result; the record keeps the text."""
    async with server(gemini_world) as running:
        project = await create_project(running, "gemini")
        async with running.http(wait=240) as http:
            events, record = await read_run(http, project, "echo headless")
            stored = await stored_id(running, project)
            assert events[0]["type"] == "init"
            assert events[0]["session_id"] == stored == record["agent_session_id"]
            assert events[-1]["type"] == "record"
            assert record["status"] == "succeeded", record
            assert record["result"] == "turn=1"
            _, again = await read_run(http, project, "echo again")
        assert again["agent_session_id"] == stored and again["result"] == "turn=2"


async def test_gemini_not_installed_answers_422_with_the_install_command(tmp_path: Path) -> None:
    """Creating a gemini project without the CLI: 422 naming the npm install command."""
    settings = make_settings(tmp_path / "data", gemini_bin=str(tmp_path / "no-such-gemini"))
    async with serve(settings) as running, running.http() as http:
        response = await http.post("/api/output-projects", json={"name": "p", "agent": "gemini"})
    assert response.status_code == 422, response.text
    assert "npm install -g @google/gemini-cli" in response.text
    assert isinstance(running.services.projects.profiles["gemini"], GeminiProfile)
