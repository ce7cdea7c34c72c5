"""The ``Store`` contract, run on every adapter.

``sqlite``: a file in tmp_path. ``mongomock-standin``: ``MongoStore`` on the
mongomock stand-in of ``tests/mongomock_async.py`` (offline, no server).
``mongodb``: ``MongoStore`` on a real server, only when
``AGENTPTY_TEST_MONGODB_URL`` is set; each test gets its own database, dropped
afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from agentpty.domain.errors import NotFound, StoreUnavailable
from agentpty.domain.models import (
    AgentState,
    EventKind,
    Milestone,
    MilestoneStatus,
    OutputProject,
    Run,
    RunStatus,
    SessionEvent,
    new_id,
    utcnow,
)
from agentpty.store.base import Store
from agentpty.store.sqlite import SqliteStore
from tests.mongomock_async import MongomockServer

MONGODB_URL_ENV = "AGENTPTY_TEST_MONGODB_URL"
T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def with_database(url: str, name: str) -> str:
    """``url`` with its path replaced by ``/name`` (query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mongomock", id="mongomock-standin"),
        pytest.param("mongodb", id="mongodb"),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each adapter; closed (and dropped) after the test."""
    from agentpty.store.mongo import MongoStore

    adapter: Store
    if request.param == "sqlite":
        adapter = SqliteStore(str(tmp_path / "db" / "agentpty.db"))
    elif request.param == "mongomock":
        server = MongomockServer()
        adapter = MongoStore("mongodb://stand-in/agentpty_test", client_factory=server.factory)
    else:
        base = os.environ.get(MONGODB_URL_ENV)
        if not base:
            pytest.skip(
                f"set {MONGODB_URL_ENV}=mongodb://… to run the contract suite "
                "against a real MongoDB"
            )
        database = f"agentpty_test_{uuid.uuid4().hex[:12]}"
        adapter = MongoStore(with_database(base, database))
    await adapter.open()
    try:
        yield adapter
    finally:
        await adapter.close()
        if request.param == "mongodb":
            from pymongo import AsyncMongoClient

            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(base)
            try:
                await client.drop_database(database)
            finally:
                await client.close()


def make_project(n: int = 0, **fields: Any) -> OutputProject:
    values: dict[str, Any] = {
        "id": new_id(),
        "name": f"p{n}",
        "workspace_path": f"/w/p{n}",
        "agent": "claude",
        "created_at": T0 + timedelta(seconds=n),
        **fields,
    }
    return OutputProject(**values)


def make_milestone(project_id: str, n: int = 0, **fields: Any) -> Milestone:
    values: dict[str, Any] = {
        "id": new_id(),
        "output_project_id": project_id,
        "title": f"m{n}",
        "context": "# ctx",
        "created_at": T0 + timedelta(seconds=n),
        **fields,
    }
    return Milestone(**values)


def make_run(project_id: str, n: int = 0) -> Run:
    return Run(
        id=new_id(),
        output_project_id=project_id,
        prompt=f"prompt {n}",
        created_at=T0 + timedelta(seconds=n),
    )


def make_event(project_id: str, n: int = 0) -> SessionEvent:
    return SessionEvent(
        id=new_id(),
        output_project_id=project_id,
        kind=EventKind.STARTED,
        agent_session_id="s",
        detail={"resumed": bool(n % 2), "n": n, "nested": {"argv": ["claude", "--resume"]}},
        created_at=T0 + timedelta(seconds=n),
    )


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value


# -- output projects


async def test_create_and_get_project(store: Store) -> None:
    """A created project reads back equal, with a str id."""
    project = make_project(agent_session_id=None)
    assert await store.create_project(project) == project
    got = await store.get_project(project.id)
    assert got == project
    assert type(got.id) is str


async def test_list_projects_order_skip_limit_total(store: Store) -> None:
    """Projects list by created_at; skip/limit page them; total counts them all."""
    projects = [make_project(n) for n in range(5)]
    for project in (projects[3], projects[0], projects[4], projects[1], projects[2]):
        await store.create_project(project)
    items, total = await store.list_projects(0, 100)
    assert [p.id for p in items] == [p.id for p in projects]
    assert total == 5
    items, total = await store.list_projects(1, 2)
    assert [p.id for p in items] == [projects[1].id, projects[2].id]
    assert total == 5
    assert await store.list_projects(4, 10) == ([projects[4]], 5)
    assert await store.list_projects(10, 10) == ([], 5)
    assert await store.list_projects(0, 0) == ([], 5)


async def test_unknown_ids_raise_not_found(store: Store) -> None:
    """Every method that takes an unknown id raises NotFound."""
    missing = new_id()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get_project(missing),
        lambda: store.delete_project(missing),
        lambda: store.update_project(missing, name="x"),
        lambda: store.set_agent_session_id_if_unset(missing, "s"),
        lambda: store.replace_agent_session_id(missing, None, "s"),
        lambda: store.get_milestone(missing),
        lambda: store.update_milestone(missing, title="x"),
        lambda: store.transition_milestone(
            missing, {MilestoneStatus.PENDING}, MilestoneStatus.FAILED
        ),
        lambda: store.delete_milestone(missing, {MilestoneStatus.PENDING}),
        lambda: store.get_run(missing),
        lambda: store.update_run(missing, status=RunStatus.FAILED),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()


async def test_delete_project_cascades(store: Store) -> None:
    """Deleting a project deletes its milestones, runs and events, not another's."""
    doomed, kept = make_project(0), make_project(1)
    for project in (doomed, kept):
        await store.create_project(project)
        await store.create_milestone(make_milestone(project.id))
        await store.create_run(make_run(project.id))
        await store.add_event(make_event(project.id))
    await store.delete_project(doomed.id)
    with pytest.raises(NotFound):
        await store.get_project(doomed.id)
    assert await store.list_milestones(doomed.id, None, 0, 100) == ([], 0)
    assert await store.list_runs(doomed.id) == []
    assert await store.list_events(doomed.id) == []
    assert (await store.list_milestones(None, None, 0, 100))[1] == 1
    assert len(await store.list_runs(kept.id)) == 1
    assert len(await store.list_events(kept.id)) == 1
    assert await store.list_projects(0, 10) == ([kept], 1)


async def test_set_agent_session_id_if_unset_has_one_winner(store: Store) -> None:
    """Of 20 concurrent only-if-unset calls exactly one wins and all return its id."""
    project = await store.create_project(make_project())
    candidates = [f"session-{n}" for n in range(20)]
    results = await asyncio.gather(
        *(store.set_agent_session_id_if_unset(project.id, c) for c in candidates)
    )
    (winner,) = set(results)
    assert winner in candidates
    assert (await store.get_project(project.id)).agent_session_id == winner
    assert await store.set_agent_session_id_if_unset(project.id, "late") == winner


async def test_replace_agent_session_id_is_compare_and_set(store: Store) -> None:
    """The id is replaced only while it still equals ``expected``."""
    project = await store.create_project(make_project())
    assert await store.replace_agent_session_id(project.id, "other", "a") is False
    assert (await store.get_project(project.id)).agent_session_id is None
    assert await store.replace_agent_session_id(project.id, None, "a") is True
    assert await store.replace_agent_session_id(project.id, None, "b") is False
    assert await store.replace_agent_session_id(project.id, "b", "c") is False
    assert await store.replace_agent_session_id(project.id, "a", "b") is True
    got = await store.get_project(project.id)
    assert got.agent_session_id == "b"
    assert got.updated_at >= project.updated_at


async def test_update_project_sets_fields_and_updated_at(store: Store) -> None:
    """update_project sets the fields, bumps updated_at and returns what get returns."""
    project = await store.create_project(make_project(updated_at=T0))
    updated = await store.update_project(
        project.id, name="renamed", confirmed_session_id="c", status="archived"
    )
    assert (updated.name, updated.confirmed_session_id, updated.status) == (
        "renamed",
        "c",
        "archived",
    )
    assert updated.updated_at > T0
    assert updated.created_at == project.created_at
    assert await store.get_project(project.id) == updated
    stamped = await store.update_project(project.id, updated_at=T0 + timedelta(days=1))
    assert stamped.updated_at == T0 + timedelta(days=1)


async def test_agent_state_fields_round_trip(store: Store) -> None:
    """agent_state, state_since, state_detail and webhook_url are stored and read back."""
    project = await store.create_project(make_project())
    assert project.agent_state is AgentState.UNKNOWN and project.state_detail == {}
    updated = await store.update_project(
        project.id,
        agent_state=AgentState.NEEDS_INPUT,
        state_since=T0,
        state_detail={"tool": "Bash", "detail": "touch x"},
        webhook_url="http://127.0.0.1:9/hook",
    )
    got = await store.get_project(project.id)
    assert got == updated
    assert got.agent_state == AgentState.NEEDS_INPUT and got.state_since == T0
    assert got.state_detail == {"tool": "Bash", "detail": "touch x"}
    assert got.webhook_url == "http://127.0.0.1:9/hook"


# -- milestones


async def seed_milestones(store: Store) -> tuple[str, str, list[Milestone]]:
    """Two projects; a's milestones: pending, in_progress, pending, completed; b's: pending."""
    a = await store.create_project(make_project(0))
    b = await store.create_project(make_project(1))
    statuses = [
        MilestoneStatus.PENDING,
        MilestoneStatus.IN_PROGRESS,
        MilestoneStatus.PENDING,
        MilestoneStatus.COMPLETED,
    ]
    milestones = [make_milestone(a.id, n, status=s) for n, s in enumerate(statuses)]
    milestones.append(make_milestone(b.id, 4))
    for milestone in reversed(milestones):
        await store.create_milestone(milestone)
    return a.id, b.id, milestones


async def test_create_get_list_milestones_with_filters(store: Store) -> None:
    """Milestones filter by project and status, page by skip/limit, and count the total."""
    a, b, ms = await seed_milestones(store)
    assert await store.get_milestone(ms[1].id) == ms[1]
    assert type((await store.get_milestone(ms[1].id)).id) is str
    assert await store.list_milestones(None, None, 0, 100) == (ms, 5)
    assert await store.list_milestones(a, None, 0, 100) == (ms[:4], 4)
    assert await store.list_milestones(b, None, 0, 100) == ([ms[4]], 1)
    pending = MilestoneStatus.PENDING
    assert await store.list_milestones(None, pending, 0, 100) == ([ms[0], ms[2], ms[4]], 3)
    assert await store.list_milestones(a, pending, 0, 100) == ([ms[0], ms[2]], 2)
    assert await store.list_milestones(a, pending, 1, 1) == ([ms[2]], 2)
    assert await store.list_milestones(a, None, 1, 2) == (ms[1:3], 4)
    assert await store.list_milestones(a, MilestoneStatus.FAILED, 0, 100) == ([], 0)
    assert await store.list_milestones(new_id(), None, 0, 100) == ([], 0)


async def test_count_milestones_has_every_status(store: Store) -> None:
    """count_milestones returns a count for every status, zero included."""
    a, _, _ = await seed_milestones(store)
    assert await store.count_milestones(a) == {
        MilestoneStatus.PENDING: 2,
        MilestoneStatus.IN_PROGRESS: 1,
        MilestoneStatus.COMPLETED: 1,
        MilestoneStatus.FAILED: 0,
    }
    assert await store.count_milestones(new_id()) == dict.fromkeys(MilestoneStatus, 0)


async def test_transition_milestone_only_if(store: Store) -> None:
    """A transition applies only from an allowed status; otherwise None and no change."""
    _, _, ms = await seed_milestones(store)
    started_at = utcnow()
    updated = await store.transition_milestone(
        ms[0].id,
        {MilestoneStatus.PENDING},
        MilestoneStatus.IN_PROGRESS,
        started_at=started_at,
        status_reason="go",
    )
    assert updated is not None
    assert updated.status is MilestoneStatus.IN_PROGRESS
    assert (updated.started_at, updated.status_reason) == (started_at, "go")
    assert updated.updated_at >= ms[0].updated_at
    assert await store.get_milestone(ms[0].id) == updated
    refused = await store.transition_milestone(
        ms[3].id,
        {MilestoneStatus.PENDING, MilestoneStatus.IN_PROGRESS},
        MilestoneStatus.FAILED,
        status_reason="nope",
    )
    assert refused is None
    assert await store.get_milestone(ms[3].id) == ms[3]
    assert await store.transition_milestone(ms[1].id, (), MilestoneStatus.FAILED) is None


async def test_concurrent_transitions_from_pending_have_one_winner(store: Store) -> None:
    """Of 20 concurrent pending → in_progress transitions exactly one succeeds."""
    _, _, ms = await seed_milestones(store)
    results = await asyncio.gather(
        *(
            store.transition_milestone(
                ms[0].id,
                {MilestoneStatus.PENDING},
                MilestoneStatus.IN_PROGRESS,
                status_reason=str(n),
            )
            for n in range(20)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await store.get_milestone(ms[0].id) == winners[0]


async def test_update_milestone(store: Store) -> None:
    """update_milestone sets fields and bumps updated_at."""
    _, _, ms = await seed_milestones(store)
    updated = await store.update_milestone(ms[0].id, context_path="/w/.milestones/x")
    assert updated.context_path == "/w/.milestones/x"
    assert updated.status is MilestoneStatus.PENDING
    assert updated.updated_at >= ms[0].updated_at
    assert await store.get_milestone(ms[0].id) == updated


async def test_delete_milestone_only_if(store: Store) -> None:
    """A milestone is deleted only while its status is allowed."""
    _, _, ms = await seed_milestones(store)
    assert await store.delete_milestone(ms[1].id, {MilestoneStatus.PENDING}) is False
    assert await store.get_milestone(ms[1].id) == ms[1]
    assert await store.delete_milestone(ms[0].id, {MilestoneStatus.PENDING}) is True
    with pytest.raises(NotFound):
        await store.get_milestone(ms[0].id)


# -- runs and events


async def test_runs_create_get_update_list(store: Store) -> None:
    """Runs read back equal, update in place and list per project by created_at."""
    a = await store.create_project(make_project(0))
    b = await store.create_project(make_project(1))
    runs = [make_run(a.id, n) for n in range(3)]
    for run in reversed(runs):
        await store.create_run(run)
    await store.create_run(make_run(b.id, 9))
    assert await store.get_run(runs[0].id) == runs[0]
    finished = utcnow()
    updated = await store.update_run(
        runs[0].id,
        status=RunStatus.SUCCEEDED,
        result="done",
        cost_usd=0.25,
        duration_ms=1200,
        agent_session_id="s",
        finished_at=finished,
    )
    assert updated.status is RunStatus.SUCCEEDED
    assert (updated.result, updated.cost_usd, updated.duration_ms) == ("done", 0.25, 1200)
    assert updated.finished_at == finished
    assert await store.get_run(runs[0].id) == updated
    assert await store.list_runs(a.id) == [updated, runs[1], runs[2]]
    assert await store.list_runs(new_id()) == []


async def test_events_add_list_since(store: Store) -> None:
    """Events list per project by created_at; ``since`` keeps those at or after it."""
    a = await store.create_project(make_project(0))
    events = [make_event(a.id, n) for n in range(4)]
    for event in (events[2], events[0], events[3], events[1]):
        assert await store.add_event(event) == event
    await store.add_event(make_event(new_id(), 1))
    assert await store.list_events(a.id) == events
    assert await store.list_events(a.id, since=events[2].created_at) == events[2:]
    assert await store.list_events(a.id, since=T0 + timedelta(days=1)) == []
    assert (await store.list_events(a.id))[1].detail == events[1].detail


async def test_datetimes_are_utc_aware_and_kept_to_the_millisecond(store: Store) -> None:
    """Every datetime comes back timezone-aware UTC, equal to what was stored (ms)."""
    stored = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ms = stored.replace(microsecond=123000)
    project = await store.create_project(make_project(created_at=stored, updated_at=stored))
    got = await store.get_project(project.id)
    for stamp in (got.created_at, got.updated_at):
        assert_utc(stamp)
        assert stamp.replace(microsecond=stamp.microsecond // 1000 * 1000) == ms
    milestone = await store.create_milestone(make_milestone(project.id))
    moved = await store.transition_milestone(
        milestone.id, {MilestoneStatus.PENDING}, MilestoneStatus.IN_PROGRESS, started_at=utcnow()
    )
    assert moved is not None
    read = await store.get_milestone(milestone.id)
    for value in (read.created_at, read.updated_at, read.started_at):
        assert_utc(value)
    assert read.started_at == moved.started_at
    run = await store.create_run(make_run(project.id))
    assert_utc((await store.update_run(run.id, finished_at=utcnow())).finished_at)
    event = await store.add_event(make_event(project.id))
    (listed,) = await store.list_events(project.id)
    assert_utc(listed.created_at)
    assert listed.created_at == event.created_at


async def test_sqlite_project_stored_before_agent_state_reads_with_defaults(
    tmp_path: Path,
) -> None:
    """A project row written before the agent-state fields existed loads as state unknown."""
    import json
    import sqlite3

    path = tmp_path / "old.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        project = await store.create_project(make_project())
        old = project.model_dump(mode="json")
        for name in ("agent_state", "state_since", "state_detail", "webhook_url"):
            old.pop(name)
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE projects SET doc = ? WHERE id = ?", (json.dumps(old), project.id))
        got = await store.get_project(project.id)
        assert got.agent_state is AgentState.UNKNOWN and got.state_since is None
        assert got.state_detail == {} and got.webhook_url is None
    finally:
        await store.close()


async def test_health_passes_while_open_and_fails_once_closed(store: Store) -> None:
    """health() returns on an open store and raises StoreUnavailable once it is closed."""
    await store.create_project(make_project())
    await store.health()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.health()
