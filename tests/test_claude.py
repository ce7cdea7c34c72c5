"""Conversations that outlive processes and servers, with the real Claude Code CLI.

The CLI is the pinned npm package (``make claude``); the model is the local
fake Messages API (``tests/fake_messages_api.py``), which answers ``turn=N``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from tests.claude_world import ClaudeWorld, claude_world, type_message
from tests.helpers import (
    TOKEN,
    RunningServer,
    TermClient,
    create_milestone,
    eventually,
    start_server_process,
    timeout,
)

pytestmark = pytest.mark.claude
__all__ = ["claude_world"]


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_first_message_creates_transcript_under_stored_id(claude_world: ClaudeWorld) -> None:
    """First start uses --session-id=<stored id>; one message makes the transcript."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.terminal(project) as term:
            status = await term.recv()
            stored = (await server.services.store.get_project(project)).agent_session_id
            assert stored and status["agent_session_id"] == stored and status["resumed"] is False
            assert f"--session-id={stored}" in cmdline(status["pid"])
            cwd = os.readlink(f"/proc/{status['pid']}/cwd")
            assert cwd == str(server.services.settings.workspaces / "proj")
            await type_message(term, "hello there")
            await claude_world.wait_requests(1)
            await term.read_screen_until("turn=1", wait=30)
        assert claude_world.api.last_session_id() == stored
        assert claude_world.transcripts(stored)


async def test_exit_before_any_message_starts_with_same_id_again(claude_world: ClaudeWorld) -> None:
    """No message, stop, start: --session-id with the same id again, no error."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.terminal(project) as term:
            first = await term.recv()
            await term.read_until("❯", wait=30)
        async with server.http() as http:
            await http.delete(f"/api/output-projects/{project}/session")
        async with server.terminal(project) as term:
            second = await term.recv()
            await term.read_until("❯", wait=30)
            assert not [f for f in term.frames if f["type"] == "error"]
        assert second["agent_session_id"] == first["agent_session_id"]
        assert second["resumed"] is False
        assert f"--session-id={first['agent_session_id']}" in cmdline(second["pid"])


async def test_transcript_deleted_behind_our_back_expires(claude_world: ClaudeWorld) -> None:
    """A vanished conversation: SESSION_EXPIRED, then a working fresh one under a new id."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.terminal(project) as term:
            old = (await term.recv())["agent_session_id"]
            await type_message(term, "remember me")
            await term.read_screen_until("turn=1", wait=30)
        async with server.http() as http:
            await http.delete(f"/api/output-projects/{project}/session")
            for path in claude_world.transcripts(old):
                path.unlink()
            async with server.terminal(project) as term:
                status = await term.recv()
                error = await term.recv_type("error")
                assert error["code"] == "SESSION_EXPIRED"
                new = status["agent_session_id"]
                assert new and new != old and status["expired_agent_session_id"] == old
                await type_message(term, "fresh start")
                await term.read_screen_until("turn=1", wait=30)
            assert claude_world.api.last_session_id() == new
            assert (await server.services.store.get_project(project)).agent_session_id == new
            events = (await http.get(f"/api/output-projects/{project}/events")).json()["events"]
        expired = [e for e in events if e["kind"] == "expired"]
        assert expired and expired[0]["detail"]["previous_agent_session_id"] == old


async def plant_refused_id(claude_world: ClaudeWorld, server: RunningServer, project: str) -> str:
    """Store an id whose transcript exists but holds no message, and return it.

    agentpty then starts ``--session-id=<id>`` and the CLI refuses it ("is
    already in use"): the conversation expires at start.
    """
    stored = await server.services.store.set_agent_session_id_if_unset(project, str(uuid.uuid4()))
    assert stored is not None
    workspace = (await server.services.store.get_project(project)).workspace_path
    folder = claude_world.config_dir / "projects" / re.sub(r"[^A-Za-z0-9]", "-", workspace)
    folder.mkdir(parents=True)
    (folder / f"{stored}.jsonl").write_text('{"type":"mode"}\n')
    return stored


async def test_resume_marker_from_cli_restarts_fresh_once(claude_world: ClaudeWorld) -> None:
    """The CLI refusing the id (already in use) is handled once, not in a loop."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        stored = await plant_refused_id(claude_world, server, project)
        async with server.terminal(project) as term:
            await term.recv()
            error = await term.recv_type("error", wait=30)
            assert error["code"] == "SESSION_EXPIRED"
            status = [f for f in term.frames if f["type"] == "status"][-1]
            assert status["agent_session_id"] != stored
            assert status["expired_agent_session_id"] == stored
            assert not [f for f in term.frames if f["type"] == "closed"]
            await type_message(term, "after expiry")
            await term.read_screen_until("turn=1", wait=30)
        events = await server.services.store.list_events(project)
        assert [e.kind for e in events].count("expired") == 1


async def test_milestone_survives_conversation_expiring_at_start(
    claude_world: ClaudeWorld,
) -> None:
    """The first milestone's process refuses its id: the fresh conversation gets the command."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        stored = await plant_refused_id(claude_world, server, project)
        async with server.http() as http:
            milestone = await create_milestone(http, project, "first unit")
            started = (await http.post(f"/api/milestones/{milestone}/start")).json()
            assert started["status"] == "in_progress", (
                started["status_reason"],
                started["delivery"],
            )
            assert started["delivery"]["outcome"] == "delivered"
            await claude_world.wait_requests(1)
        fresh = (await server.services.store.get_project(project)).agent_session_id
        assert fresh != stored
        assert claude_world.api.last_session_id() == fresh
        expected = f"GSD-NEW-PROJECT with context file .milestones/{milestone}/MILESTONE-CONTEXT.md"
        assert expected in claude_world.api.last_user_text()


async def test_input_survives_conversation_expiring_at_start(claude_world: ClaudeWorld) -> None:
    """Text sent as the process refuses its id is typed into the fresh conversation."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        stored = await plant_refused_id(claude_world, server, project)
        async with server.http() as http:
            reply = await http.post(
                f"/api/output-projects/{project}/session/input",
                json={"text": "hello after expiry", "submit": True},
            )
            assert reply.json() == {"outcome": "delivered", "reason": "", "delivered": True}
            await claude_world.wait_requests(1)
        fresh = (await server.services.store.get_project(project)).agent_session_id
        assert fresh != stored and claude_world.api.last_session_id() == fresh
        assert "hello after expiry" in claude_world.api.last_user_text()


async def test_concurrent_starts_start_one_process(claude_world: ClaudeWorld) -> None:
    """Twenty concurrent POST /session calls start exactly one Claude Code process."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            replies = await asyncio.gather(
                *(http.post(f"/api/output-projects/{project}/session") for _ in range(20))
            )
        infos = [reply.json() for reply in replies]
        assert len({info["pid"] for info in infos}) == 1
        assert sum(info["started"] for info in infos) == 1


async def test_headless_run_captures_init_session_id(claude_world: ClaudeWorld) -> None:
    """A headless run streams events; init's session_id equals the stored id; result kept."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            run = (
                await http.post(f"/api/output-projects/{project}/runs", json={"prompt": "hi"})
            ).json()
            events = []
            async with http.stream(
                "GET", f"/api/output-projects/{project}/runs/{run['id']}/events"
            ) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
            record = (await http.get(f"/api/output-projects/{project}/runs/{run['id']}")).json()
        stored = (await server.services.store.get_project(project)).agent_session_id
        init = next(e for e in events if e.get("subtype") == "init")
        assert init["session_id"] == stored == record["agent_session_id"]
        assert any(e["type"] == "assistant" for e in events)
        assert events[-1]["type"] == "record"
        assert record["status"] == "succeeded" and record["result"] == "turn=1"
        assert record["cost_usd"] is not None and record["duration_ms"] is not None


async def test_headless_refused_while_interactive_is_live(claude_world: ClaudeWorld) -> None:
    """One writer per conversation: a run is refused (409) while the PTY session lives."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            await http.post(f"/api/output-projects/{project}/session")
            refused = await http.post(f"/api/output-projects/{project}/runs", json={"prompt": "x"})
        assert refused.status_code == 409 and "one writer" in refused.json()["detail"]


async def test_clear_moves_the_stored_id(claude_world: ClaudeWorld) -> None:
    """/clear starts a new conversation; the SessionStart hook makes the stored id follow."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.terminal(project) as term:
            old = (await term.recv())["agent_session_id"]
            await type_message(term, "before clear")
            await term.read_screen_until("turn=1", wait=30)
            await type_message(term, "/clear")

            async def changed() -> str | None:
                current = (await server.services.store.get_project(project)).agent_session_id
                return current if current != old else None

            new = await eventually(changed)
            await type_message(term, "after clear")
            await claude_world.wait_requests(2)
        assert claude_world.api.last_session_id() == new
        events = await server.services.store.list_events(project)
        change = [e for e in events if e.kind == "id_changed"]
        assert change and change[0].detail["previous_agent_session_id"] == old
        assert change[0].detail["source"] == "clear"


async def test_server_killed_and_restarted_resumes(claude_world: ClaudeWorld) -> None:
    """In-process sessions: kill -9 the server; a new server resumes the conversation (turn 2).

    (With the session host, the default, the agent survives and is adopted
    instead: tests/host/test_claude_adoption.py.)
    """
    env = {
        **claude_world.env,
        "AGENTPTY_SESSION_HOST": "false",
        "AGENTPTY_DATA_DIR": str(claude_world.data_dir),
        "AGENTPTY_TOKEN": TOKEN,
        "AGENTPTY_PORT": "0",
        "AGENTPTY_CLAUDE_BIN": claude_world.settings_overrides()["claude_bin"],
    }

    async def start() -> tuple[asyncio.subprocess.Process, str]:
        return await start_server_process(env)

    def ws_url(base: str, project: str) -> str:
        return base.replace("http", "ws") + f"/api/output-projects/{project}/terminal?token={TOKEN}"

    first, base = await start()
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            created = await http.post(
                "/api/output-projects", json={"name": "p", "agent": "claude", "workspace_path": "p"}
            )
            project = created.json()
            claude_world.trust(project["workspace_path"])
        async with websockets.connect(ws_url(base, project["id"])) as ws:
            term = TermClient(ws)
            before = await term.recv()
            await type_message(term, "first message")
            await term.read_screen_until("turn=1", wait=30)

            # The CLI writes its transcript lazily; a crash before that loses the
            # turn (agentpty then reports SESSION_EXPIRED). Crash after it.
            async def persisted() -> bool:
                files = claude_world.transcripts(before["agent_session_id"])
                return any('"type":"assistant"' in f.read_text() for f in files)

            await eventually(persisted)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # The orphaned agent got SIGHUP from its closed terminal; give it its exit.
    with pytest.raises(ProcessLookupError):
        async with asyncio.timeout(timeout(10)):
            while True:
                os.kill(before["pid"], 0)
                await asyncio.sleep(0.05)

    second, base = await start()
    try:
        async with websockets.connect(ws_url(base, project["id"])) as ws:
            term = TermClient(ws)
            status = await term.recv()
            transcripts = claude_world.transcripts(before["agent_session_id"])
            assert status["resumed"] is True, (status, [p.read_text() for p in transcripts])
            assert status["agent_session_id"] == before["agent_session_id"]
            await term.read_until("[resumed conversation", wait=10)
            await type_message(term, "second message")
            await term.read_screen_until("turn=2", wait=30)
        assert claude_world.api.last_turn() == 2
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()


async def test_milestones_share_one_conversation(claude_world: ClaudeWorld) -> None:
    """Two milestones: one process; the second command is turn 2's last user message."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            ids = []
            for title in ("first unit", "second unit"):
                ids.append(await create_milestone(http, project, title))
            first = (await http.post(f"/api/milestones/{ids[0]}/start")).json()
            assert first["status"] == "in_progress", (
                first.get("status_reason"),
                first.get("delivery"),
            )
            await claude_world.wait_requests(1)
            pid = (await http.get(f"/api/output-projects/{project}/session")).json()["pid"]
            second = (await http.post(f"/api/milestones/{ids[1]}/start")).json()
            assert second["status"] == "in_progress", (
                second.get("status_reason"),
                second.get("delivery"),
            )
            await claude_world.wait_requests(2)
            assert (await http.get(f"/api/output-projects/{project}/session")).json()["pid"] == pid
        assert "--" in cmdline(pid)  # the new-project command was the initial prompt
        api = claude_world.api
        assert api.last_turn() == 2
        assert "GSD-NEW-PROJECT with context file" in user_texts(api.requests[0])
        expected = f"GSD-NEW-MILESTONE with context file .milestones/{ids[1]}/MILESTONE-CONTEXT.md"
        assert expected in api.last_user_text()
        assert len({session_of(body) for body in api.requests}) == 1


async def test_long_milestone_command_is_submitted(claude_world: ClaudeWorld) -> None:
    """A command over 1,000 characters reaches the model (it is not left in the input box)."""
    template = "/gsd:new-milestone {context_path} " + "{title} " * 3
    async with claude_world.server(new_milestone_command=template) as server:
        project = await claude_world.create_project(server)
        title = "migrate-the-billing-module-" * 16
        async with server.http() as http:
            await http.post(f"/api/output-projects/{project}/session")
            async with server.terminal(project) as term:
                await term.recv()
                await type_message(term, "warm up")
                await claude_world.wait_requests(1)
            milestone = await create_milestone(http, project, title)
            started = (await http.post(f"/api/milestones/{milestone}/start")).json()
            assert started["status"] == "in_progress", (
                started["status_reason"],
                started["delivery"],
            )
            await claude_world.wait_requests(2)
        command = template.format(context_path=started["context_path"], title=title)
        assert len(command) > 1000
        arguments = command.removeprefix("/gsd:new-milestone ").strip()
        assert (
            f"GSD-NEW-MILESTONE with context file {arguments}" in claude_world.api.last_user_text()
        )


async def test_milestone_at_process_start_is_not_lost(claude_world: ClaudeWorld) -> None:
    """A milestone started within milliseconds of the process start is delivered."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            milestone = await create_milestone(http, project, "early bird")
            session, started = await asyncio.gather(
                http.post(f"/api/output-projects/{project}/session"),
                http.post(f"/api/milestones/{milestone}/start"),
            )
        assert session.status_code == 200
        assert started.json()["status"] == "in_progress", started.json()
        await claude_world.wait_requests(1)
        assert f".milestones/{milestone}/MILESTONE-CONTEXT.md" in claude_world.api.last_user_text()


def user_texts(body: dict[str, object]) -> str:
    from tests.fake_messages_api import user_text

    return user_text(body)


def session_of(body: dict[str, object]) -> str | None:
    from tests.fake_messages_api import session_id

    return session_id(body)


@pytest.mark.parametrize("running", [True, False], ids=["typed", "initial-prompt"])
async def test_unknown_command_from_cli_leaves_milestone_pending(
    claude_world: ClaudeWorld, running: bool
) -> None:
    """The real CLI refusing a slash command keeps the milestone pending, with its answer.

    Typed into a running session, or passed as the prompt of a session the
    milestone starts: either way the model is never asked.
    """
    template = "/nosuch:command {context_path}"
    async with claude_world.server(new_project_command=template) as server:
        project = await claude_world.create_project(server)
        async with server.http() as http:
            if running:
                await http.post(f"/api/output-projects/{project}/session")
            milestone = await create_milestone(http, project, "refused")
            reply = (await http.post(f"/api/milestones/{milestone}/start")).json()
        assert reply["status"] == "pending", reply
        assert reply["delivery"]["outcome"] == "refused", reply
        assert "Unknown command" in reply["delivery"]["agent_words"], reply
        assert "Unknown" in reply["status_reason"]
        assert not claude_world.api.requests
