"""The agent state machine on hook payloads recorded from the real Claude Code CLI, and the bus.

The payloads in ``tests/data/claude-hooks-2.1.197/`` were recorded from the
pinned CLI against the fake Messages API (docs/claude-code-findings.md, §i).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.capabilities import HookEndpoint, ReportKind
from agentpty.agents.claude_hooks import HOOK_EVENTS, SETTINGS_FILE, ClaudeHooks
from agentpty.domain.models import AgentState, OutputProject
from agentpty.service.agent_state import AgentStateService
from agentpty.service.event_bus import EventBus
from agentpty.store.sqlite import SqliteStore

DATA = Path(__file__).parent / "data" / "claude-hooks-2.1.197"
VERSIONS = ("2.1.197", "2.1.332")


def recorded(name: str, version: str = "2.1.197") -> list[dict[str, Any]]:
    folder = DATA.parent / f"claude-hooks-{version}"
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[AgentStateService, EventBus, str]]:
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    project = OutputProject(id="p1", name="p", workspace_path=str(tmp_path), agent="claude")
    await store.create_project(project)
    bus = EventBus()
    try:
        yield AgentStateService(store, bus), bus, project.id
    finally:
        await store.close()


async def replay(
    states: AgentStateService, project_id: str, name: str, version: str = "2.1.197"
) -> list[AgentState]:
    hooks = ClaudeHooks()
    seen = []
    for payload in recorded(name, version):
        report = hooks.parse(payload)
        if report is not None:
            seen.append((await states.report(project_id, report)).state)
    return seen


@pytest.mark.parametrize("version", VERSIONS)
async def test_permission_flow_goes_working_needs_input_working_idle(
    world: tuple[AgentStateService, EventBus, str], version: str
) -> None:
    """Recorded prompt→tool→permission→approved→stop: the states, the question and the events."""
    states, bus, project = world
    subscription, _, _ = bus.subscribe()
    seen = await replay(states, project, "tool", version)
    assert seen == [
        AgentState.IDLE,  # SessionStart
        AgentState.WORKING,  # UserPromptSubmit
        AgentState.WORKING,  # PreToolUse (Bash)
        AgentState.NEEDS_INPUT,  # PermissionRequest
        AgentState.NEEDS_INPUT,  # Notification permission_prompt (late, no tool)
        AgentState.WORKING,  # PostToolUse
        AgentState.IDLE,  # Stop
        AgentState.IDLE,  # SessionEnd: the process exit says more
    ]
    published = [
        (event.data["agent_state"], event.data["question"]) for event in subscription.pending()
    ]
    assert published == [
        ("idle", None),
        ("working", None),
        ("working", None),
        ("needs_input", {"tool": "Bash", "detail": "touch x"}),
        ("working", None),
        ("idle", None),
    ]


async def test_state_is_stored_with_the_project(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """The state and the question are in the store: a new service (a restart) reads them."""
    states, _, project = world
    hooks = ClaudeHooks()
    for payload in recorded("tool")[:4]:
        report = hooks.parse(payload)
        assert report is not None
        await states.report(project, report)
    fresh = AgentStateService(states.store, EventBus())
    view = await fresh.view(project)
    assert view.state is AgentState.NEEDS_INPUT and view.since is not None
    assert view.fields()["question"] == {"tool": "Bash", "detail": "touch x"}


@pytest.mark.parametrize(("source", "after"), [("compact", "working"), ("clear", "idle")])
async def test_a_conversation_going_on_keeps_the_turn_a_new_one_ends_it(
    world: tuple[AgentStateService, EventBus, str], source: str, after: str
) -> None:
    """SessionStart mid-turn: a compaction continues the turn, a /clear starts anew (idle)."""
    states, _, project = world
    hooks = ClaudeHooks()
    cid = "0b6b7ad4-2a55-4b8e-9d56-5d7e6c1f3a11"
    prompt = hooks.parse({"hook_event_name": "UserPromptSubmit", "session_id": cid, "prompt": "x"})
    started = hooks.parse({"hook_event_name": "SessionStart", "session_id": cid, "source": source})
    assert prompt is not None and started is not None
    assert (await states.report(project, prompt)).state is AgentState.WORKING
    assert str((await states.report(project, started)).state) == after


async def test_refused_permission_leaves_needs_input_to_the_screen(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """Esc on the permission menu fires no hook: hooks alone leave the state at needs_input."""
    states, _, project = world
    assert (await replay(states, project, "deny"))[-2] is AgentState.NEEDS_INPUT
    await states.observe_screen(project, AgentState.IDLE, reason="prompt on screen")
    view = await states.view(project)
    assert view.state is AgentState.IDLE and view.detail["source"] == "screen"


async def test_idle_notification_changes_nothing_after_stop(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """Notification idle_prompt ~60 s after Stop repeats idle and publishes nothing new."""
    states, bus, project = world
    seen = await replay(states, project, "idle")
    assert seen[-3:] == [AgentState.IDLE, AgentState.IDLE, AgentState.IDLE]
    assert [e.data["agent_state"] for e in bus._recent] == ["idle", "working", "idle"]


async def test_prompt_report_confirms_the_typed_text(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """expect_prompt resolves on the UserPromptSubmit carrying the typed text, not on another."""
    states, _, project = world
    hooks = ClaudeHooks()
    future = states.expect_prompt(project, "please [[bash: touch x]]")
    other = hooks.parse({**recorded("tool")[1], "prompt": "something else"})
    assert other is not None
    await states.report(project, other)
    assert not future.done()
    report = hooks.parse(recorded("tool")[1])
    assert report is not None and report.kind is ReportKind.PROMPT_SUBMITTED
    await states.report(project, report)
    assert await asyncio.wait_for(future, 1) == "please [[bash: touch x]]"


async def test_wait_not_asking_returns_once_the_question_is_answered(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """A command waiting on needs_input is released by the next state, not before."""
    states, _, project = world
    await replay(states, project, "deny")
    waiter = asyncio.ensure_future(states.wait_not_asking(project))
    await asyncio.sleep(0)
    assert not waiter.done()
    await states.exited(project, 0)
    await asyncio.wait_for(waiter, 1)
    assert (await states.view(project)).detail == {"exit_code": 0}


def test_install_writes_every_verified_event(tmp_path: Path) -> None:
    """install() writes one --settings file posting every verified hook event to the server."""
    hooks = ClaudeHooks()
    hooks.install(tmp_path, HookEndpoint("http://127.0.0.1:1/api/hooks", {}, ["hook"]))
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert set(settings["hooks"]) == set(HOOK_EVENTS)
    for event, groups in settings["hooks"].items():
        hook = groups[0]["hooks"][0]
        assert hook.get("url", hook.get("command")) == (
            "hook" if event == "SessionStart" else "http://127.0.0.1:1/api/hooks"
        )


# -- the event bus


async def test_bus_replays_after_last_event_id_and_resyncs_when_too_old() -> None:
    """Reconnecting with an id gets exactly what followed; an id older than the window resyncs."""
    bus = EventBus(capacity=3)
    first = bus.publish("state", "p", n=1)
    for n in range(2, 6):
        bus.publish("state", "p", n=n)
    _, replay, resync = bus.subscribe(bus.last_id - 2)
    assert [e.data["n"] for e in replay] == [4, 5] and not resync
    _, replay, resync = bus.subscribe(first.id)
    assert [e.data["n"] for e in replay] == [3, 4, 5] and resync
    restarted = EventBus()
    assert restarted.first_id > bus.last_id
    _, replay, resync = restarted.subscribe(bus.last_id)
    assert replay == [] and resync


async def test_slow_subscriber_is_cut_off_without_blocking_publish() -> None:
    """A subscriber that does not read is ended; publishing and other subscribers go on."""
    bus = EventBus(subscriber_limit=2)
    slow, _, _ = bus.subscribe()
    fast, _, _ = bus.subscribe()
    got = []
    for n in range(5):
        bus.publish("state", "p", n=n)
        event = await fast.get()
        assert event is not None
        got.append(event.data["n"])
    assert got == [0, 1, 2, 3, 4]
    assert slow.cut_off and await slow.get() is None
    assert bus.subscribers == 1


async def test_a_late_hook_after_the_exit_does_not_revive_the_state(
    world: tuple[AgentStateService, EventBus, str],
) -> None:
    """A Stop hook arriving after the process exited leaves the state exited with its code."""
    states, _, project = world
    await replay(states, project, "tool")
    await states.exited(project, 143)
    stop = ClaudeHooks().parse(recorded("tool")[-2])
    assert stop is not None and stop.kind is ReportKind.TURN_ENDED
    view = await states.report(project, stop)
    assert view.state is AgentState.EXITED and view.detail == {"exit_code": 143}
