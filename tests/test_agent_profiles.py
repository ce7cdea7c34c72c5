"""Agent-agnostic behaviour, run once per agent profile that keeps conversations.

One fixture, every implementation (uvicorn's parametrised ``ws_protocol_cls``):
the same tests run with the Claude profile driving the fake agent (agentpty
chooses the id), and with a stand-in for an agent that chooses its own id
(as Codex does), once reporting it through hooks and once only through its
files. A real server on loopback, real PTYs, real SQLite.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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
from tests.own_id_agent import FAKE_AGENT, OwnIdProfile

AGENTS = ["claude", "ownid-hooks", "ownid-files"]


@dataclass
class AgentWorld:
    """A server whose agent ``agent`` is the fake agent, and the fake's message log."""

    server: RunningServer
    agent: str
    config: Path
    log: Path

    @property
    def chooses_id(self) -> bool:
        return self.agent == "claude"

    def messages(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def conversation_files(self, conversation_id: str) -> list[Path]:
        return [
            *self.config.glob(f"projects/*/{conversation_id}.jsonl"),
            *self.config.glob(f"own/{conversation_id}.jsonl"),
        ]

    async def stored_id(self, project: str) -> str | None:
        return (await self.server.services.store.get_project(project)).agent_session_id

    async def learnt_id(self, project: str) -> str:
        """The stored id, once agentpty knows it (agents choosing their own: learnt later)."""

        async def known() -> str | None:
            return await self.stored_id(project)

        return await eventually(known)


@pytest.fixture(params=AGENTS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AgentWorld]:
    """A server with the fake agent under one of the agent profiles in ``AGENTS``."""
    config = tmp_path / "fake-config"
    log = tmp_path / "fake-agent.jsonl"
    env = {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(config),
        "FAKE_AGENT_LOG": str(log),
        "FAKE_AGENT_STARTUP": "0.3",
    }
    for name in ("new-project", "new-milestone"):
        path = config / "commands" / "gsd" / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name.upper()} $ARGUMENTS")
    settings = make_settings(
        tmp_path / "data",
        claude_bin=FAKE_AGENT,
        new_milestone_command="/gsd:new-milestone {context_path} {title}",
    )
    profiles = build_profiles(settings, environ=env)
    profiles["shell"] = clean_shell()
    agent = str(request.param)
    if agent.startswith("ownid"):
        # The server installs its hooks once it listens, as for every profile.
        profiles[agent] = OwnIdProfile(env, config, hooks=agent == "ownid-hooks")
    async with serve(settings, profiles) as server:
        yield AgentWorld(server, agent, config, log)


async def send(http: httpx.AsyncClient, project: str, text: str) -> None:
    reply = await http.post(f"/api/output-projects/{project}/session/input", json={"text": text})
    assert reply.json()["delivered"] is True, reply.text


async def test_restart_resumes_the_same_conversation(world: AgentWorld) -> None:
    """First start stores (or learns) the id; after a stop the next start resumes it: turn 2."""
    project = await world.server.create_project(agent=world.agent)
    if world.chooses_id:
        assert await world.stored_id(project) is None  # chosen at the first start
    async with world.server.http() as http:
        await send(http, project, "first")
        stored = await world.learnt_id(project)
        await http.delete(f"/api/output-projects/{project}/session")
        await send(http, project, "second")
        info = (await http.get(f"/api/output-projects/{project}/session")).json()
    assert info["resumed"] is True and info["agent_session_id"] == stored
    assert [(m["session_id"], m["turn"]) for m in world.messages()] == [(stored, 1), (stored, 2)]
    assert await world.stored_id(project) == stored
    assert world.conversation_files(stored), "the agent's own file names the stored id"


async def test_two_milestones_reach_one_conversation(world: AgentWorld) -> None:
    """The first milestone is the new-project prompt, the second is turn 2 of the same one."""
    project = await world.server.create_project(agent=world.agent)
    async with world.server.http() as http:
        for title in ("module A", "module B"):
            milestone = await create_milestone(http, project, title)
            started = (await http.post(f"/api/milestones/{milestone}/start")).json()
            assert started["status"] == "in_progress", started
    messages = world.messages()
    assert [m["turn"] for m in messages] == [1, 2]
    assert messages[0]["text"].startswith("NEW-PROJECT")
    assert messages[1]["text"].startswith("NEW-MILESTONE")
    assert {m["session_id"] for m in messages} == {await world.learnt_id(project)}


async def test_headless_runs_continue_the_conversation(world: AgentWorld) -> None:
    """Two headless runs: the init id is stored, the second resumes it (turn=2); results kept."""
    project = await world.server.create_project(agent=world.agent)
    records = []
    async with world.server.http() as http:
        for prompt in ("one", "two"):
            run = (
                await http.post(f"/api/output-projects/{project}/runs", json={"prompt": prompt})
            ).json()
            events = []
            url = f"/api/output-projects/{project}/runs/{run['id']}/events"
            async with http.stream("GET", url) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
            records.append(events[-1]["run"])
            init = next(e for e in events if e.get("subtype") == "init")
            assert events[-1]["type"] == "record"
            assert init["session_id"] == events[-1]["run"]["agent_session_id"]
    stored = await world.stored_id(project)
    assert stored is not None
    assert [(r["status"], r["result"]) for r in records] == [
        ("succeeded", "turn=1"),
        ("succeeded", "turn=2"),
    ]
    assert {r["agent_session_id"] for r in records} == {stored}
    assert records[1]["cost_usd"] is not None and records[1]["duration_ms"] is not None


async def test_vanished_conversation_expires_once(world: AgentWorld) -> None:
    """A used conversation deleted on disk: SESSION_EXPIRED, old id in history, fresh one."""
    project = await world.server.create_project(agent=world.agent)
    async with world.server.http() as http:
        await send(http, project, "before")
        old = await world.learnt_id(project)
        await http.delete(f"/api/output-projects/{project}/session")
        for path in world.conversation_files(old):
            path.unlink()
        async with world.server.terminal(project) as term:
            await term.recv_type("status")
            error = await term.recv_type("error")
            assert error["code"] == "SESSION_EXPIRED"
            await send(http, project, "after")

        async def fresh() -> str | None:
            current = await world.stored_id(project)
            return current if current not in (None, old) else None

        new = await eventually(fresh)
        events = (await http.get(f"/api/output-projects/{project}/events")).json()["events"]
    expired = [e for e in events if e["kind"] == "expired"]
    assert len(expired) == 1 and expired[0]["detail"]["previous_agent_session_id"] == old
    last = world.messages()[-1]
    assert (last["text"], last["session_id"], last["turn"]) == ("after", new, 1)


async def test_hook_route_checks_key_agent_and_id(world: AgentWorld) -> None:
    """Hook reports need the project's key and a well-formed id; agents without hooks get 400."""
    project = await world.server.create_project(agent=world.agent)
    key = world.server.services.hooks.key(project)
    payload = {"hook_event_name": "UserPromptSubmit", "session_id": "../x", "prompt": "p"}
    async with world.server.http(auth=False) as http:
        wrong = await http.post(f"/api/hooks/{project}?key={'0' * 64}", json=payload)
        assert wrong.status_code == 401
        bad = await http.post(f"/api/hooks/{project}?key={key}", json=payload)
        assert bad.status_code == 400
        if world.agent == "ownid-files":
            assert "does not report through hooks" in bad.json()["detail"]
            return
        assert "not a conversation id" in bad.json()["detail"]
        cid = "0b9e4ac5-1d0e-4e4f-9a55-2f0b1b0e6a11"
        # The path agentpty gave Claude Code before hooks were agent-agnostic still works.
        for path in (f"/api/hooks/{project}", f"/api/hooks/claude/{project}"):
            ok = await http.post(f"{path}?key={key}", json={**payload, "session_id": cid})
            assert ok.status_code == 200 and ok.json()["report"] == "prompt_submitted"
    assert await world.stored_id(project) == cid


async def test_posted_hook_names_project_and_key_in_headers(world: AgentWorld) -> None:
    """POST /api/hooks (what the agent posts itself): headers authenticate; no answer body."""
    project = await world.server.create_project(agent=world.agent)
    key = world.server.services.hooks.key(project)
    cid = "0b9e4ac5-1d0e-4e4f-9a55-2f0b1b0e6a12"
    payload = {"hook_event_name": "UserPromptSubmit", "session_id": cid, "prompt": "p"}
    named = {"X-Agentpty-Project": project}
    async with world.server.http(auth=False) as http:
        for headers in ({}, named, {**named, "X-Agentpty-Hook-Key": "0" * 64}):
            refused = await http.post("/api/hooks", json=payload, headers=headers)
            assert refused.status_code == 401, headers
            assert "X-Agentpty-Hook-Key" in refused.json()["detail"]
        headers = {**named, "X-Agentpty-Hook-Key": key}
        reply = await http.post("/api/hooks", json=payload, headers=headers)
        if world.agent == "ownid-files":
            assert reply.status_code == 400
            return
        assert (reply.status_code, reply.content) == (204, b"")
    assert await world.stored_id(project) == cid
