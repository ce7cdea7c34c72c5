"""MongoDB adapter specifics: start-up failures, outages, and what is sent.

The shared behaviour is in ``test_store_contract.py``; these run offline on
the mongomock stand-in (``tests/mongomock_async.py``) or against addresses
where nothing listens.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from agentpty.domain.errors import Conflict, StoreUnavailable
from agentpty.domain.models import Milestone, MilestoneStatus, OutputProject, new_id
from agentpty.store import open_store
from agentpty.store.mongo import MongoStore
from tests.helpers import timeout
from tests.mongomock_async import MongomockServer

URL = "mongodb://agent:s3cret@stand-in:27017/agentpty_test"
UNREACHABLE = "mongodb://user:secret@127.0.0.1:1/agentpty"


@pytest.fixture
def server() -> MongomockServer:
    return MongomockServer()


@pytest.fixture
async def store(server: MongomockServer) -> AsyncIterator[MongoStore]:
    store = MongoStore(URL, client_factory=server.factory)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def collect_pymongo_connect_leak() -> Iterator[None]:
    """Collect the socket PyMongo leaks when closing a client cancels a connect.

    PyMongo 4.20's async pool (``pool_shared._async_create_connection``)
    closes its socket on ``OSError`` and ``TimeoutError`` but not when it is
    cancelled; closing the client while its monitor is connecting leaves the
    socket to the garbage collector. Its ResourceWarning would then fail
    whatever test runs at collection time (warnings are errors): collect it
    here, in the test that caused it.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def project() -> OutputProject:
    return OutputProject(id=new_id(), name="p", workspace_path="/w", agent="claude")


# -- start-up


@pytest.mark.usefixtures("collect_pymongo_connect_leak")
async def test_open_unreachable_names_masked_url() -> None:
    """open() on an unreachable server raises StoreUnavailable naming the masked URL."""
    store = MongoStore(UNREACHABLE, server_selection_timeout=0.3)
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    message = info.value.message
    assert "127.0.0.1:1" in message
    assert "***" in message
    assert "secret" not in message
    assert "\n" not in message
    await store.close()


async def test_open_invalid_url_raises_store_unavailable() -> None:
    """A URL PyMongo rejects raises StoreUnavailable with the password masked."""
    store = MongoStore("mongodb://user:secret@host:notaport/x")
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    assert "secret" not in info.value.message
    assert "user:***@" in info.value.message


def test_serve_with_unreachable_mongodb_exits_with_one_line(tmp_path: Path) -> None:
    """`agentpty serve` with an unreachable MongoDB exits non-zero, one masked line, no trace."""
    env = {**os.environ, "AGENTPTY_DATA_DIR": str(tmp_path / "data")}
    env.pop("AGENTPTY_DATABASE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentpty",
            "serve",
            "--database-url",
            "mongodb://user:pw@127.0.0.1:1/x",
            "--port",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(15),
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "mongodb://user:***@127.0.0.1:1/x" in lines[0]
    assert "Traceback" not in done.stderr
    assert ":pw@" not in done.stderr + done.stdout


def test_database_name_comes_from_the_url_path() -> None:
    """The database is the URL's path, ``agentpty`` when it has none."""
    assert MongoStore("mongodb://h:1/mydb?authSource=admin").database == "mydb"
    assert MongoStore("mongodb://u:p@h1:1,h2:2/other").database == "other"
    assert MongoStore("mongodb://h").database == "agentpty"
    assert MongoStore("mongodb+srv://u:p@cluster.example.net/?w=majority").database == "agentpty"


def test_open_store_routes_mongodb_urls() -> None:
    """open_store builds a MongoStore for mongodb:// and mongodb+srv:// URLs."""
    assert isinstance(open_store("mongodb://h/db"), MongoStore)
    assert isinstance(open_store("mongodb+srv://u:p@cluster.example.net/db"), MongoStore)


def test_missing_driver_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pymongo, choosing MongoDB raises StoreUnavailable: install agentpty[mongo]."""
    monkeypatch.setitem(sys.modules, "pymongo", None)
    monkeypatch.delitem(sys.modules, "agentpty.store.mongo")
    with pytest.raises(StoreUnavailable, match=r"install agentpty\[mongo\]"):
        importlib.import_module("agentpty.store.mongo")
    with pytest.raises(StoreUnavailable, match=r"install agentpty\[mongo\]"):
        open_store("mongodb://h/db")


async def test_open_builds_the_client_pings_and_creates_indexes(
    store: MongoStore, server: MongomockServer
) -> None:
    """open() asks for tz-aware UTC datetimes, pings, and indexes every collection."""
    (client,) = server.clients
    assert client.host == URL
    assert client.options["tz_aware"] is True
    assert client.options["tzinfo"] is UTC
    assert client.options["serverSelectionTimeoutMS"] == 5000
    assert server.calls[0].method == "command" and server.calls[0].args == ("ping",)
    indexed = {call.target for call in server.calls_to("create_index")}
    assert indexed == {
        f"agentpty_test.{name}" for name in ("projects", "milestones", "runs", "events")
    }
    await store.open()  # idempotent: no second client
    assert len(server.clients) == 1


async def test_close_is_idempotent_and_store_reopens(
    store: MongoStore, server: MongomockServer
) -> None:
    """close() twice is fine; a closed store refuses calls and opens again with a new client."""
    created = await store.create_project(project())
    await store.close()
    await store.close()
    assert server.clients[0].closed
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get_project(created.id)
    await store.open()
    assert await store.get_project(created.id) == created
    assert len(server.clients) == 2


# -- outages


async def test_one_connection_failure_is_retried_for_idempotent_calls(
    store: MongoStore, server: MongomockServer
) -> None:
    """A single AutoReconnect on a read or a field update is retried transparently."""
    created = await store.create_project(project())
    server.fail_next(1)
    assert await store.get_project(created.id) == created
    server.fail_next(1, after=True)
    assert (await store.update_project(created.id, name="x")).name == "x"
    server.fail_next(1)
    assert (await store.list_projects(0, 10))[1] == 1


async def test_two_connection_failures_raise_store_unavailable(
    store: MongoStore, server: MongomockServer
) -> None:
    """Two AutoReconnects in a row give StoreUnavailable naming the masked URL."""
    created = await store.create_project(project())
    server.fail_next(2)
    with pytest.raises(StoreUnavailable) as info:
        await store.get_project(created.id)
    assert isinstance(info.value.__cause__, AutoReconnect)
    assert "agent:***@stand-in:27017" in info.value.message
    assert "s3cret" not in info.value.message
    assert "retry later" in info.value.message
    assert await store.get_project(created.id) == created  # the outage is over


async def test_insert_whose_reply_was_lost_is_not_duplicated(
    store: MongoStore, server: MongomockServer
) -> None:
    """A create whose first attempt landed but whose reply was lost succeeds, once."""
    server.fail_next(1, after=True)
    created = await store.create_project(project())
    assert len(server.calls_to("insert_one")) == 2
    assert await store.list_projects(0, 10) == ([created], 1)


async def test_duplicate_id_is_a_conflict(store: MongoStore) -> None:
    """Creating an entity with an id already taken raises Conflict."""
    created = await store.create_project(project())
    with pytest.raises(Conflict):
        await store.create_project(created)


async def test_compare_and_sets_are_not_retried(store: MongoStore, server: MongomockServer) -> None:
    """A connection failure during a compare-and-set surfaces as StoreUnavailable."""
    created = await store.create_project(project())
    milestone = await store.create_milestone(
        Milestone(id=new_id(), output_project_id=created.id, title="m")
    )
    pending = {MilestoneStatus.PENDING}
    server.fail_next(1)
    with pytest.raises(StoreUnavailable):
        await store.replace_agent_session_id(created.id, None, "a")
    server.fail_next(1)
    with pytest.raises(StoreUnavailable):
        await store.transition_milestone(milestone.id, pending, MilestoneStatus.IN_PROGRESS)
    server.fail_next(1)
    with pytest.raises(StoreUnavailable):
        await store.delete_milestone(milestone.id, pending)
    assert await store.get_milestone(milestone.id) == milestone


async def test_only_if_unset_survives_a_lost_reply(
    store: MongoStore, server: MongomockServer
) -> None:
    """If the only-if-unset write landed but its reply was lost, the retry returns our id."""
    created = await store.create_project(project())
    server.fail_next(1, after=True)
    assert await store.set_agent_session_id_if_unset(created.id, "mine") == "mine"


# -- what is sent


async def test_conditions_are_in_the_filters(store: MongoStore, server: MongomockServer) -> None:
    """Each compare-and-set is one write whose filter holds the condition, with no read first."""
    created = await store.create_project(project())
    milestone = await store.create_milestone(
        Milestone(id=new_id(), output_project_id=created.id, title="m")
    )

    async def sent(op: object) -> list[tuple[str, tuple[Any, ...]]]:
        start = len(server.calls)
        assert asyncio.iscoroutine(op)
        await op
        return [(call.method, call.args) for call in server.calls[start:]]

    (call,) = await sent(store.set_agent_session_id_if_unset(created.id, "s1"))
    assert call[0] == "find_one_and_update"
    assert call[1][0] == {"_id": created.id, "agent_session_id": None}
    assert call[1][1]["$set"]["agent_session_id"] == "s1"

    (call,) = await sent(store.replace_agent_session_id(created.id, "s1", "s2"))
    assert call[0] == "update_one"
    assert call[1][0] == {"_id": created.id, "agent_session_id": "s1"}
    assert call[1][1]["$set"]["agent_session_id"] == "s2"

    (call,) = await sent(
        store.transition_milestone(
            milestone.id, {MilestoneStatus.PENDING}, MilestoneStatus.IN_PROGRESS
        )
    )
    assert call[0] == "find_one_and_update"
    assert call[1][0] == {"_id": milestone.id, "status": {"$in": ["pending"]}}
    assert call[1][1]["$set"]["status"] == "in_progress"

    (call,) = await sent(store.delete_milestone(milestone.id, {MilestoneStatus.IN_PROGRESS}))
    assert call == ("delete_one", ({"_id": milestone.id, "status": {"$in": ["in_progress"]}},))


async def test_stand_in_interleaves_concurrent_operations(server: MongomockServer) -> None:
    """The stand-in yields before each operation, so read-then-write code would race."""
    coll = server.client()["db"]["c"]
    await coll.insert_one({"_id": "x", "owner": None})

    async def claim(owner: str) -> bool:
        doc = await coll.find_one({"_id": "x"})  # the unsafe way: read, then write
        assert doc is not None
        if doc["owner"] is not None:
            return False
        await coll.update_one({"_id": "x"}, {"$set": {"owner": owner}})
        return True

    assert list(await asyncio.gather(claim("a"), claim("b"))) == [True, True]
