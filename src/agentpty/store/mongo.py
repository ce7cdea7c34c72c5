"""MongoDB adapter: the ``Store`` port on PyMongo's native async API.

Selected by a ``mongodb://`` or ``mongodb+srv://`` database URL; the database
is the URL's path (``mongodb://host/dbname``), ``agentpty`` if it has none.
The driver is the optional extra ``agentpty[mongo]``: importing this module
without it raises ``StoreUnavailable``.

One collection per entity (projects, milestones, runs, events), one document
per entity: the model's fields as they are, with our string id as ``_id`` and
datetimes as BSON dates, read back timezone-aware in UTC. Lists are sorted by
``created_at`` then ``_id``. Every compare-and-set (``agent_session_id``,
milestone transitions and deletes) is a single update or delete whose filter
holds the condition, so the server applies it atomically; no transactions.

Errors: a ``PyMongoError`` becomes ``StoreUnavailable`` naming the URL with its
password masked (the API answers 503), except a duplicate id (``Conflict``);
a value BSON cannot hold is ``InvalidInput``. Idempotent calls (reads, field
updates, inserts of our own ``_id``) are retried once on a connection failure
before giving up; compare-and-sets are not, since a retry of one that landed
would report the wrong outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from agentpty.config import mask_url
from agentpty.domain.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from agentpty.domain.models import (
    Milestone,
    MilestoneStatus,
    OutputProject,
    Run,
    SessionEvent,
    utcnow,
)

try:
    from bson.errors import BSONError
    from pymongo import AsyncMongoClient, ReturnDocument
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.errors import (
        ConnectionFailure,
        DuplicateKeyError,
        PyMongoError,
        ServerSelectionTimeoutError,
    )
except ImportError as exc:  # the driver is the optional extra
    raise StoreUnavailable(
        f"the MongoDB driver is missing ({exc}): install agentpty[mongo]"
    ) from exc

__all__ = ["MongoStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Document = dict[str, Any]
ClientFactory = Callable[..., AsyncMongoClient[Document]]

DEFAULT_DATABASE = "agentpty"
_ORDER = [("created_at", 1), ("_id", 1)]
_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "projects": [_ORDER],
    "milestones": [_ORDER, [("output_project_id", 1), *_ORDER], [("status", 1), *_ORDER]],
    "runs": [[("output_project_id", 1), *_ORDER]],
    "events": [[("output_project_id", 1), *_ORDER]],
}


def _database_name(url: str) -> str:
    """The database named by the URL's path, or ``agentpty``."""
    return unquote(urlsplit(url).path.lstrip("/")) or DEFAULT_DATABASE


def _to_doc(model: BaseModel) -> Document:
    doc = model.model_dump()
    return {"_id": doc.pop("id"), **doc}


def _from_doc(cls: type[M], doc: Mapping[str, Any]) -> M:
    data = dict(doc)
    data["id"] = data.pop("_id")
    return cls.model_validate(data)


class MongoStore:
    """``Store`` on a MongoDB database.

    ``client_factory`` builds the client in ``open()`` (default
    ``AsyncMongoClient``; tests pass a stand-in with the same async surface).
    ``server_selection_timeout`` (seconds) bounds how long an operation waits
    for a reachable server, including the ping in ``open()``.
    Cancelling a call is safe: each is one server operation that either landed
    or did not, except ``delete_project``, whose steps leave the project in
    place until its children are gone, so repeating it finishes the job.
    """

    def __init__(
        self,
        url: str,
        *,
        client_factory: ClientFactory | None = None,
        server_selection_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.database = _database_name(url)
        self.server_selection_timeout = server_selection_timeout
        self._factory: ClientFactory = client_factory or AsyncMongoClient
        self._masked = mask_url(url)
        password = urlsplit(url).password or ""
        self._secrets = {password, unquote(password)} - {""}
        self._client: AsyncMongoClient[Document] | None = None
        self._db: AsyncDatabase[Document] | None = None
        self._lock = asyncio.Lock()

    # -- plumbing

    async def open(self) -> None:
        """Connect, ping and create the indexes; idempotent.

        Raises ``StoreUnavailable`` (URL masked) if the URL is invalid or no
        server answers within ``server_selection_timeout``.
        """
        async with self._lock:
            if self._db is not None:
                return
            try:
                client = self._factory(
                    self.url,
                    tz_aware=True,
                    tzinfo=UTC,
                    serverSelectionTimeoutMS=round(self.server_selection_timeout * 1000),
                    appname="agentpty",
                )
            except (PyMongoError, ValueError) as exc:  # ConfigurationError, a bad port
                raise StoreUnavailable(
                    f"invalid MongoDB URL {self._masked}: {self._describe(exc)}"
                ) from exc
            db = client[self.database]
            try:
                await client.admin.command("ping")
                for name, indexes in _INDEXES.items():
                    for keys in indexes:
                        await db[name].create_index(keys)
            except BaseException as exc:
                await client.close()
                if isinstance(exc, PyMongoError):
                    raise self._translate(exc) from exc
                raise
            self._client, self._db = client, db

    async def close(self) -> None:
        """Close the client; idempotent. The store can be opened again."""
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    async def health(self) -> None:
        if self._client is None:
            raise StoreUnavailable("the store is not open")
        client = self._client
        await self._call(lambda: client.admin.command("ping"))

    def _coll(self, name: str) -> AsyncCollection[Document]:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db[name]

    async def _call(self, op: Callable[[], Awaitable[T]], *, retry: bool = False) -> T:
        """Run ``op`` and translate driver errors; with ``retry``, run it again
        once after a connection failure (``op`` must be idempotent).

        A server-selection timeout is not retried: the driver already waited
        ``server_selection_timeout`` for a server, and waiting twice only
        delays the 503.
        """
        try:
            try:
                return await op()
            except ConnectionFailure as exc:
                if not retry or isinstance(exc, ServerSelectionTimeoutError):
                    raise
                log.warning("MongoDB at %s: %s; retrying once", self._masked, self._describe(exc))
            return await op()
        except PyMongoError as exc:
            raise self._translate(exc) from exc
        except BSONError as exc:
            raise InvalidInput(f"cannot store this value in MongoDB: {exc}") from exc

    def _translate(self, exc: PyMongoError) -> StoreUnavailable:
        detail = self._describe(exc)
        if isinstance(exc, ConnectionFailure):
            return StoreUnavailable(
                f"MongoDB at {self._masked} is unreachable: {detail}; retry later"
            )
        return StoreUnavailable(f"MongoDB at {self._masked} failed: {detail}")

    def _describe(self, exc: Exception) -> str:
        """One line of the driver's message, without its topology dump or password."""
        text = str(exc).split(", Timeout: ", 1)[0].split(", full error: ", 1)[0]
        text = " ".join(text.split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _insert(self, name: str, model: BaseModel) -> None:
        doc = _to_doc(model)
        coll = self._coll(name)
        attempts = 0

        async def insert() -> None:
            nonlocal attempts
            attempts += 1
            try:
                await coll.insert_one(doc)
            except DuplicateKeyError as exc:
                if attempts == 1:
                    raise Conflict(f"a {name[:-1]} with id {doc['_id']!r} already exists") from exc
                # The retry met our own first attempt: it had landed.

        await self._call(insert, retry=True)

    async def _get(self, name: str, cls: type[M], entity_id: str) -> M:
        coll = self._coll(name)
        doc = await self._call(lambda: coll.find_one({"_id": entity_id}), retry=True)
        if doc is None:
            raise NotFound(f"no {name[:-1]} with id {entity_id!r}")
        return _from_doc(cls, doc)

    async def _update(self, name: str, cls: type[M], entity_id: str, fields: Document) -> M:
        if not fields:
            return await self._get(name, cls, entity_id)
        coll = self._coll(name)
        doc = await self._call(
            lambda: coll.find_one_and_update(
                {"_id": entity_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
            ),
            retry=True,
        )
        if doc is None:
            raise NotFound(f"no {name[:-1]} with id {entity_id!r}")
        return _from_doc(cls, doc)

    async def _find(
        self, name: str, cls: type[M], query: Document, skip: int = 0, limit: int | None = None
    ) -> list[M]:
        """Documents matching ``query`` in list order; ``limit`` None or < 0: all, 0: none."""
        if limit == 0:
            return []
        coll = self._coll(name)

        async def find() -> list[Document]:
            cursor = coll.find(query).sort(_ORDER).skip(max(skip, 0))
            if limit is not None and limit > 0:
                cursor = cursor.limit(limit)
            return await cursor.to_list(None)

        return [_from_doc(cls, doc) for doc in await self._call(find, retry=True)]

    async def _count(self, name: str, query: Document) -> int:
        coll = self._coll(name)
        return await self._call(lambda: coll.count_documents(query), retry=True)

    # -- output projects

    async def create_project(self, project: OutputProject) -> OutputProject:
        await self._insert("projects", project)
        return project

    async def get_project(self, project_id: str) -> OutputProject:
        return await self._get("projects", OutputProject, project_id)

    async def list_projects(self, skip: int, limit: int) -> tuple[list[OutputProject], int]:
        total = await self._count("projects", {})
        return await self._find("projects", OutputProject, {}, skip, limit), total

    async def delete_project(self, project_id: str) -> None:
        """Delete the project, its milestones, runs and events.

        Children go first and the project last, so an interruption leaves the
        project visible and a repeated delete completes.
        """
        await self.get_project(project_id)
        children = {"output_project_id": project_id}
        for name in ("milestones", "runs", "events"):
            await self._call(partial(self._coll(name).delete_many, children), retry=True)
        projects = self._coll("projects")
        await self._call(lambda: projects.delete_one({"_id": project_id}), retry=True)

    async def update_project(self, project_id: str, **fields: Any) -> OutputProject:
        fields.setdefault("updated_at", utcnow())
        return await self._update("projects", OutputProject, project_id, fields)

    async def set_agent_session_id_if_unset(self, project_id: str, conversation_id: str) -> str:
        projects = self._coll("projects")

        async def cas() -> str:
            # Idempotent: if a first attempt landed, the retry reads our own id.
            while True:
                doc = await projects.find_one_and_update(
                    {"_id": project_id, "agent_session_id": None},
                    {"$set": {"agent_session_id": conversation_id, "updated_at": utcnow()}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:
                    doc = await projects.find_one({"_id": project_id})
                    if doc is None:
                        raise NotFound(f"no project with id {project_id!r}")
                # None here means someone reset the id between our two calls: try again.
                if doc.get("agent_session_id") is not None:
                    return str(doc["agent_session_id"])

        return await self._call(cas, retry=True)

    async def replace_agent_session_id(
        self, project_id: str, expected: str | None, new: str | None
    ) -> bool:
        projects = self._coll("projects")
        result = await self._call(
            lambda: projects.update_one(
                {"_id": project_id, "agent_session_id": expected},
                {"$set": {"agent_session_id": new, "updated_at": utcnow()}},
            )
        )
        if result.matched_count:
            return True
        await self.get_project(project_id)  # NotFound for an unknown id
        return False

    # -- milestones

    async def create_milestone(self, milestone: Milestone) -> Milestone:
        await self._insert("milestones", milestone)
        return milestone

    async def get_milestone(self, milestone_id: str) -> Milestone:
        return await self._get("milestones", Milestone, milestone_id)

    async def list_milestones(
        self,
        output_project_id: str | None,
        status: MilestoneStatus | None,
        skip: int,
        limit: int,
    ) -> tuple[list[Milestone], int]:
        query: Document = {}
        if output_project_id is not None:
            query["output_project_id"] = output_project_id
        if status is not None:
            query["status"] = str(status)
        total = await self._count("milestones", query)
        return await self._find("milestones", Milestone, query, skip, limit), total

    async def count_milestones(self, output_project_id: str) -> dict[MilestoneStatus, int]:
        milestones = self._coll("milestones")
        pipeline: list[Document] = [
            {"$match": {"output_project_id": output_project_id}},
            {"$group": {"_id": "$status", "n": {"$sum": 1}}},
        ]

        async def count() -> list[Document]:
            cursor = await milestones.aggregate(pipeline)
            return await cursor.to_list(None)

        counts = dict.fromkeys(MilestoneStatus, 0)
        for row in await self._call(count, retry=True):
            counts[MilestoneStatus(row["_id"])] = int(row["n"])
        return counts

    async def delete_milestone(
        self, milestone_id: str, only_if: Collection[MilestoneStatus]
    ) -> bool:
        milestones = self._coll("milestones")
        allowed = [str(status) for status in only_if]
        result = await self._call(
            lambda: milestones.delete_one({"_id": milestone_id, "status": {"$in": allowed}})
        )
        if result.deleted_count:
            return True
        await self.get_milestone(milestone_id)  # NotFound for an unknown id
        return False

    async def transition_milestone(
        self,
        milestone_id: str,
        only_if: Collection[MilestoneStatus],
        status: MilestoneStatus,
        **fields: Any,
    ) -> Milestone | None:
        milestones = self._coll("milestones")
        allowed = [str(current) for current in only_if]
        update = {**fields, "status": str(status), "updated_at": utcnow()}
        doc = await self._call(
            lambda: milestones.find_one_and_update(
                {"_id": milestone_id, "status": {"$in": allowed}},
                {"$set": update},
                return_document=ReturnDocument.AFTER,
            )
        )
        if doc is not None:
            return _from_doc(Milestone, doc)
        await self.get_milestone(milestone_id)  # NotFound for an unknown id
        return None

    async def update_milestone(self, milestone_id: str, **fields: Any) -> Milestone:
        fields.setdefault("updated_at", utcnow())
        return await self._update("milestones", Milestone, milestone_id, fields)

    # -- headless runs

    async def create_run(self, run: Run) -> Run:
        await self._insert("runs", run)
        return run

    async def get_run(self, run_id: str) -> Run:
        return await self._get("runs", Run, run_id)

    async def update_run(self, run_id: str, **fields: Any) -> Run:
        return await self._update("runs", Run, run_id, fields)

    async def list_runs(self, output_project_id: str) -> list[Run]:
        return await self._find("runs", Run, {"output_project_id": output_project_id})

    # -- session history

    async def add_event(self, event: SessionEvent) -> SessionEvent:
        await self._insert("events", event)
        return event

    async def list_events(
        self, output_project_id: str, since: datetime | None = None
    ) -> list[SessionEvent]:
        query: Document = {"output_project_id": output_project_id}
        if since is not None:
            query["created_at"] = {"$gte": since}
        return await self._find("events", SessionEvent, query)
