"""The conversation-id service and hook reports, on a real SQLite store and real files.

Two kinds of agent: Claude (agentpty chooses the id) and the stand-in that
chooses its own (``tests/own_id_agent.py``, as Codex does).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentpty.agents.base import AgentProfile
from agentpty.agents.capabilities import AgentReport, ReportKind
from agentpty.agents.claude import ClaudeProfile
from agentpty.agents.shell import ShellProfile
from agentpty.domain.errors import InvalidInput
from agentpty.domain.models import EventKind, OutputProject, new_id
from agentpty.service.conversations import ConversationService
from agentpty.service.history import History
from agentpty.service.hooks import HookService
from agentpty.store.sqlite import SqliteStore
from tests.own_id_agent import OwnIdProfile


@dataclass
class World:
    store: SqliteStore
    conversations: ConversationService
    hooks: HookService
    config: Path
    workspace: Path
    changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    async def project(self, agent: str) -> OutputProject:
        project = OutputProject(
            id=new_id(), name="p", workspace_path=str(self.workspace), agent=agent
        )
        return await self.store.create_project(project)

    async def stored(self, project: OutputProject) -> OutputProject:
        return await self.store.get_project(project.id)

    def claude_transcript(self, conversation_id: str) -> Path:
        path = self.config / "projects" / "-w" / f"{conversation_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": "user"}) + "\n")
        return path

    def own_file(self, conversation_id: str, cwd: str | None = None) -> Path:
        """A conversation file as the fake agent writes it in own-id mode."""
        path = self.config / "own" / f"{conversation_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"type": "meta", "id": conversation_id, "cwd": cwd or str(self.workspace)}
        path.write_text(json.dumps(meta) + "\n" + json.dumps({"type": "user"}) + "\n")
        return path

    async def kinds(self, project: OutputProject) -> list[EventKind]:
        return [event.kind for event in await self.store.list_events(project.id)]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A SQLite store, Claude and own-id profiles over one config dir, and a change log."""
    config = tmp_path / "config"
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(config)}
    profiles: dict[str, AgentProfile] = {
        "claude": ClaudeProfile(env),
        "ownid": OwnIdProfile(env, config, hooks=True),
        "shell": ShellProfile(env),
    }
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    conversations = ConversationService(store, profiles, History(store))
    world = World(store, conversations, HookService(profiles, conversations), config, tmp_path)
    conversations.add_listener(lambda *change: world.changes.append(change))
    try:
        yield world
    finally:
        await store.close()


def support(world: World, agent: str) -> ClaudeProfile | OwnIdProfile:
    profile = world.conversations.profiles[agent]
    assert isinstance(profile, ClaudeProfile | OwnIdProfile)
    return profile


async def test_chosen_id_is_stored_once_and_reused(world: World) -> None:
    """An agent that lets agentpty choose: a fresh id is stored once, then started again."""
    project = await world.project("claude")
    conversations = support(world, "claude").conversations
    first, replaced = await world.conversations.starting_id(project.id, conversations)
    assert first is not None and replaced is None
    assert (await world.stored(project)).agent_session_id == first
    assert await world.conversations.starting_id(project.id, conversations) == (first, None)


async def test_vanished_confirmed_conversation_expires(world: World) -> None:
    """Known to hold messages, then gone: a fresh id by compare-and-set, an expired event."""
    project = await world.project("claude")
    conversations = support(world, "claude").conversations
    old, _ = await world.conversations.starting_id(project.id, conversations)
    assert old is not None
    world.claude_transcript(old)
    await world.conversations.confirm_if_exists(project, old)
    assert (await world.stored(project)).confirmed_session_id == old
    assert await world.conversations.starting_id(project.id, conversations) == (old, None)
    next(world.config.glob(f"projects/*/{old}.jsonl")).unlink()
    new, replaced = await world.conversations.starting_id(project.id, conversations)
    assert replaced == old and new not in (None, old)
    assert (await world.stored(project)).agent_session_id == new
    assert await world.kinds(project) == [EventKind.EXPIRED]
    assert world.changes[-1] == (project.id, old, new)


async def test_expire_is_compare_and_set(world: World) -> None:
    """Expiring an id that is no longer stored changes nothing and records nothing."""
    project = await world.project("claude")
    conversations = support(world, "claude").conversations
    current, _ = await world.conversations.starting_id(project.id, conversations)
    assert not await world.conversations.expire(project.id, conversations, "stale", "test")
    assert (await world.stored(project)).agent_session_id == current
    assert await world.kinds(project) == []


async def test_own_id_agent_starts_without_an_id_and_learns_it(world: World) -> None:
    """An agent choosing its own id starts with none; learn stores only if unset."""
    project = await world.project("ownid")
    conversations = support(world, "ownid").conversations
    assert await world.conversations.starting_id(project.id, conversations) == (None, None)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert await world.conversations.learn(project, first, "test") == first
    assert await world.conversations.learn(project, second, "test") == first
    assert (await world.stored(project)).agent_session_id == first
    assert (project.id, None, first) in world.changes
    with pytest.raises(InvalidInput, match="not a conversation id"):
        await world.conversations.learn(project, "../../etc", "test")


async def test_own_id_agent_discovers_its_conversation(world: World) -> None:
    """discover reads the agent's files: a conversation in this cwd since the start."""
    project = await world.project("ownid")
    since = datetime.now(UTC) - timedelta(seconds=5)
    world.own_file(str(uuid.uuid4()), cwd="/somewhere/else")
    assert await world.conversations.discover(project, since) is None
    mine = str(uuid.uuid4())
    world.own_file(mine)
    assert await world.conversations.discover(project, since) == mine
    assert (await world.stored(project)).agent_session_id == mine
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert await world.conversations.discover(project, later) == mine  # stored: kept


async def test_own_id_resume_and_expiry(world: World) -> None:
    """A learnt id is resumed; vanished after use it is expired to none, so the next is learnt."""
    project = await world.project("ownid")
    conversations = support(world, "ownid").conversations
    old = str(uuid.uuid4())
    path = world.own_file(old)
    await world.conversations.learn(project, old, "test")
    assert await world.conversations.starting_id(project.id, conversations) == (old, None)
    await world.conversations.confirm(project.id, old)
    path.unlink()
    assert await world.conversations.starting_id(project.id, conversations) == (None, old)
    assert (await world.stored(project)).agent_session_id is None
    assert await world.kinds(project) == [EventKind.EXPIRED]


async def test_own_id_never_used_is_forgotten_quietly(world: World) -> None:
    """A learnt id whose conversation never held a message is dropped without an event."""
    project = await world.project("ownid")
    await world.conversations.learn(project, str(uuid.uuid4()), "test")
    conversations = support(world, "ownid").conversations
    assert await world.conversations.starting_id(project.id, conversations) == (None, None)
    assert await world.kinds(project) == []


async def test_reports_move_the_stored_id_and_confirm(world: World) -> None:
    """A report naming another conversation moves the id (id_changed); a prompt confirms it."""
    project = await world.project("claude")
    conversations = support(world, "claude").conversations
    old, _ = await world.conversations.starting_id(project.id, conversations)
    new = str(uuid.uuid4())
    started = AgentReport(ReportKind.CONVERSATION_STARTED, new, source="clear", fresh=True)
    assert await world.conversations.follow(project, started) is True
    assert await world.conversations.follow(project, started) is False
    fresh = await world.stored(project)
    assert fresh.agent_session_id == new and fresh.confirmed_session_id is None
    await world.conversations.follow(project, AgentReport(ReportKind.PROMPT_SUBMITTED, new))
    assert (await world.stored(project)).confirmed_session_id == new
    events = await world.store.list_events(project.id)
    assert [(e.kind, e.detail["previous_agent_session_id"]) for e in events] == [
        (EventKind.ID_CHANGED, old)
    ]


async def test_hook_payloads_enter_through_the_profile(world: World) -> None:
    """Hook payloads are parsed by the profile; bad ids and hookless agents are refused."""
    world.hooks.set_server_url("http://127.0.0.1:1", "token", world.config.parent / "data")
    heard: list[AgentReport] = []
    world.hooks.add_listener(lambda _project, report: heard.append(report))
    project = await world.project("ownid")
    cid = str(uuid.uuid4())
    payload = {"hook_event_name": "UserPromptSubmit", "session_id": cid, "prompt": "x"}
    report, changed = await world.hooks.receive(project, payload)
    assert report is not None and report.kind is ReportKind.PROMPT_SUBMITTED and changed
    stored = await world.stored(project)
    assert (stored.agent_session_id, stored.confirmed_session_id) == (cid, cid)
    assert heard == [report]
    assert await world.hooks.receive(project, {"hook_event_name": "PreCompact"}) == (None, False)
    with pytest.raises(InvalidInput, match="not a conversation id"):
        await world.hooks.receive(project, {**payload, "session_id": "*"})
    with pytest.raises(InvalidInput, match="does not report through hooks"):
        await world.hooks.receive(await world.project("shell"), payload)
    env = world.hooks.env(project.id)
    assert (env["AGENTPTY_PROJECT_ID"], env["AGENTPTY_HOOK_KEY"]) == (
        project.id,
        world.hooks.key(project.id),
    )
    assert env["AGENTPTY_HOOK_URL"].endswith(
        f"/api/hooks/{project.id}?key={world.hooks.key(project.id)}"
    )
    assert world.hooks.key_valid(project.id, world.hooks.key(project.id))
    assert not world.hooks.key_valid(project.id, world.hooks.key("other"))
