"""Milestones: REST rules, and command delivery into one conversation (fake agent)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentpty.service.container import build_profiles
from tests.helpers import (
    RunningServer,
    clean_shell,
    create_milestone,
    eventually,
    make_settings,
    serve,
)

FAKE_AGENT = str(Path(__file__).with_name("fake_agent.py"))


class FakeAgentWorld:
    """The fake agent (a named stand-in for the Claude Code CLI) and its log."""

    def __init__(self, root: Path) -> None:
        self.config = root / "fake-claude"
        self.log = root / "fake-agent.jsonl"
        self.env = {
            **os.environ,
            "CLAUDE_CONFIG_DIR": str(self.config),
            "FAKE_AGENT_LOG": str(self.log),
            "FAKE_AGENT_STARTUP": "0.3",
        }
        for name in ("new-project", "new-milestone"):
            path = self.config / "commands" / "gsd" / f"{name}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name.upper()} $ARGUMENTS")

    def messages(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, FakeAgentWorld]]:
    world = FakeAgentWorld(tmp_path)
    settings = make_settings(
        tmp_path / "data",
        claude_bin=FAKE_AGENT,
        default_agent="claude",
        new_milestone_command="/gsd:new-milestone {context_path} {title}",
    )
    profiles = build_profiles(settings, environ=world.env)
    profiles["shell"] = clean_shell()
    async with serve(settings, profiles) as server:
        yield server, world


async def test_two_milestones_share_one_process_and_conversation(
    fake: tuple[RunningServer, FakeAgentWorld],
) -> None:
    """First milestone: new-project as the initial prompt; second: new-milestone, turn 2."""
    server, world = fake
    project = await server.create_project(agent="claude")
    async with server.http() as http:
        first = await create_milestone(http, project, "convert module A")
        started = (await http.post(f"/api/milestones/{first}/start")).json()
        assert started["status"] == "in_progress", started
        assert started["context_path"] == f".milestones/{first}/MILESTONE-CONTEXT.md"
        pid = (await http.get(f"/api/output-projects/{project}/session")).json()["pid"]
        second = await create_milestone(http, project, "convert module B")
        assert (await http.post(f"/api/milestones/{second}/start")).json()[
            "status"
        ] == "in_progress"
        assert (await http.get(f"/api/output-projects/{project}/session")).json()["pid"] == pid
        detail = (await http.get(f"/api/output-projects/{project}")).json()
    assert detail["milestones"]["in_progress"] == 2
    messages = world.messages()
    assert [m["turn"] for m in messages] == [1, 2]
    assert len({m["session_id"] for m in messages}) == 1
    assert messages[0]["text"] == f"NEW-PROJECT .milestones/{first}/MILESTONE-CONTEXT.md"
    assert messages[1]["text"].startswith(
        f"NEW-MILESTONE .milestones/{second}/MILESTONE-CONTEXT.md"
    )
    workspace = Path(detail["workspace_path"])
    assert {m["cwd"] for m in messages} == {str(workspace)}
    context = (workspace / started["context_path"]).read_text()
    assert context.startswith("# convert module A") and "ctx" in context
    assert (workspace / ".planning").is_dir()


async def test_long_command_is_submitted(fake: tuple[RunningServer, FakeAgentWorld]) -> None:
    """A command over 1,000 characters is submitted, not left in the input box."""
    server, world = fake
    project = await server.create_project(agent="claude")
    title = "long title " * 45
    async with server.http() as http:
        await http.post(f"/api/output-projects/{project}/session")
        first = await create_milestone(http, project, "first")
        await http.post(f"/api/milestones/{first}/start")
        second = await create_milestone(http, project, title)
        started = (await http.post(f"/api/milestones/{second}/start")).json()
    assert started["status"] == "in_progress"
    assert len(world.messages()[-1]["text"]) > 500
    command = f"/gsd:new-milestone .milestones/{second}/MILESTONE-CONTEXT.md {title.strip()}"
    assert len(command) > 500


async def test_milestone_right_after_process_start_is_not_lost(
    fake: tuple[RunningServer, FakeAgentWorld],
) -> None:
    """A milestone started while the agent is still starting is delivered once it is ready."""
    server, world = fake
    project = await server.create_project(agent="claude")
    async with server.http() as http:
        milestone = await create_milestone(http, project, "early")
        start_session = http.post(f"/api/output-projects/{project}/session")
        start_milestone = http.post(f"/api/milestones/{milestone}/start")
        session, started = await asyncio.gather(start_session, start_milestone)
    assert session.status_code == 200
    assert started.json()["status"] == "in_progress"
    assert [m["turn"] for m in world.messages()] == [1]
    assert "early" not in world.messages()[0]["text"]  # new-project: the context path only
    assert milestone in world.messages()[0]["text"]


async def test_concurrent_starts_are_delivered_one_at_a_time(
    fake: tuple[RunningServer, FakeAgentWorld],
) -> None:
    """Twenty concurrent HTTP starts: each command arrives whole, exactly once, one per turn."""
    server, world = fake
    project = await server.create_project(agent="claude")
    # The last reply waits for all twenty deliveries (17 s on an idle machine).
    async with server.http(wait=120) as http:
        ids = [await create_milestone(http, project, f"m{i}") for i in range(20)]
        replies = await asyncio.gather(*(http.post(f"/api/milestones/{i}/start") for i in ids))
    assert all(reply.json()["status"] == "in_progress" for reply in replies)
    messages = world.messages()
    assert [m["turn"] for m in messages] == list(range(1, 21))
    delivered = [next(i for i in ids if i in m["text"]) for m in messages]
    assert sorted(delivered) == sorted(ids)
    titles = {i: f"m{n}" for n, i in enumerate(ids)}
    expected = [
        f"NEW-MILESTONE .milestones/{i}/MILESTONE-CONTEXT.md {titles[i]}" for i in delivered[1:]
    ]
    # Whole commands, never interleaved: the first is new-project, then new-milestone.
    assert messages[0]["text"] == f"NEW-PROJECT .milestones/{delivered[0]}/MILESTONE-CONTEXT.md"
    assert [m["text"] for m in messages[1:]] == expected


async def test_starts_are_delivered_in_the_order_they_were_asked(
    fake: tuple[RunningServer, FakeAgentWorld],
) -> None:
    """Starts requested in a known order while the agent boots are typed in that order."""
    server, world = fake
    project = await server.create_project(agent="claude")
    async with server.http() as http:
        ids = [await create_milestone(http, project, f"m{i}") for i in range(20)]
    # Called in order on the server's loop: each reaches the project's queue in turn.
    results = await asyncio.gather(*(server.services.milestones.start(i) for i in ids))
    assert all(milestone.status == "in_progress" for milestone, _ in results)
    delivered = [next(i for i in ids if i in m["text"]) for m in world.messages()]
    assert delivered == ids


async def test_unknown_command_leaves_milestone_pending(
    fake: tuple[RunningServer, FakeAgentWorld],
) -> None:
    """The agent answers Unknown command: the milestone stays pending with the reason."""
    server, world = fake
    (world.config / "commands" / "gsd" / "new-project.md").unlink()
    project = await server.create_project(agent="claude")
    async with server.http() as http:
        milestone = await create_milestone(http, project, "needs gsd")
        reply = (await http.post(f"/api/milestones/{milestone}/start")).json()
    assert reply["status"] == "pending"
    assert reply["delivery"]["outcome"] == "refused"
    assert "Unknown command" in reply["status_reason"]
    assert "Unknown command" in reply["delivery"]["agent_words"]


async def test_shell_profile_gets_plain_lines(server: RunningServer) -> None:
    """The shell profile receives the same commands as plain lines, in the workspace root."""
    project = await server.create_project()
    async with server.http() as http, server.terminal(project) as term:
        await term.recv()
        milestone = await create_milestone(http, project, "shell one")
        assert (await http.post(f"/api/milestones/{milestone}/start")).json()["delivery"] == {
            "outcome": "delivered",
            "reason": "echoed on screen",
            "agent_words": None,
        }
        await term.read_until(f"/gsd:new-project .milestones/{milestone}/MILESTONE-CONTEXT.md")
        second = await create_milestone(http, project, "shell two")
        await http.post(f"/api/milestones/{second}/start")
        await term.read_until(f"/gsd:new-milestone .milestones/{second}/MILESTONE-CONTEXT.md")


async def test_transitions_and_bad_input(server: RunningServer) -> None:
    """Illegal transitions answer 409 naming the status; bad input 404/413/422."""
    project = await server.create_project()
    async with server.http() as http:
        assert (
            await http.post("/api/milestones", json={"output_project_id": "nope", "title": "t"})
        ).status_code == 404
        assert (
            await http.post("/api/milestones", json={"output_project_id": project, "title": ""})
        ).status_code == 422
        huge = "x" * (1024 * 1024 + 1)
        too_big = await http.post(
            "/api/milestones", json={"output_project_id": project, "title": "t", "context": huge}
        )
        assert too_big.status_code == 413
        milestone = await create_milestone(http, project, "t")
        complete = await http.post(f"/api/milestones/{milestone}/complete")
        assert complete.status_code == 409 and "pending" in complete.json()["detail"]
        assert (await http.post(f"/api/milestones/{milestone}/start")).json()[
            "status"
        ] == "in_progress"
        again = await http.post(f"/api/milestones/{milestone}/start")
        assert again.status_code == 409 and "in_progress" in again.json()["detail"]
        deleted = await http.delete(f"/api/milestones/{milestone}")
        assert deleted.status_code == 409 and "in_progress" in deleted.json()["detail"]
        assert (await http.post(f"/api/milestones/{milestone}/complete")).json()[
            "status"
        ] == "completed"
        assert (await http.post(f"/api/milestones/{milestone}/fail")).status_code == 409
        other = await create_milestone(http, project, "to delete")
        assert (await http.delete(f"/api/milestones/{other}")).status_code == 204
        assert (await http.get(f"/api/milestones/{other}")).status_code == 404
        listing = (
            await http.get(f"/api/milestones?output_project_id={project}&status=completed")
        ).json()
        assert listing["total"] == 1 and listing["milestones"][0]["id"] == milestone
        assert (await http.get("/api/milestones?status=bogus")).status_code == 422
        assert (await http.get("/api/milestones?limit=0")).status_code == 422


async def test_milestone_websocket(server: RunningServer) -> None:
    """Attaching through a pending milestone starts it; a finished one: ALREADY_FINISHED, 4004."""
    import websockets
    from websockets.exceptions import ConnectionClosed

    project = await server.create_project()
    async with server.http() as http:
        milestone = await create_milestone(http, project, "via ws")
        async with server.terminal(project, path=f"/api/milestones/{milestone}/terminal") as term:
            assert (await term.recv())["type"] == "status"
            await term.read_until(".milestones/")

            async def started() -> bool:
                reply = await http.get(f"/api/milestones/{milestone}")
                return bool(reply.json()["status"] == "in_progress")

            await eventually(started)
        await http.post(f"/api/milestones/{milestone}/complete")
    url = f"{server.ws_url}/api/milestones/{milestone}/terminal?token={server.token}"
    async with websockets.connect(url) as ws:
        error = json.loads(await ws.recv())
        assert error["code"] == "ALREADY_FINISHED"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4004
