"""A stand-in for PyMongo's ``AsyncMongoClient`` over mongomock (tests only).

No MongoDB server runs on the test machine, so the offline contract run of
``MongoStore`` goes through this stand-in: a thin async wrapper around
mongomock's synchronous client, with the surface the adapter uses and nothing
more. ``MongomockServer`` holds mongomock's in-memory data, a log of the calls
made and a fault injector; ``server.client`` has ``AsyncMongoClient``'s
constructor signature and is passed as ``MongoStore(client_factory=server.factory)``.

What it mirrors faithfully, because the contract depends on it:

- every operation yields to the event loop before it runs, as a round trip
  would, so check-then-act code in the adapter interleaves under
  ``asyncio.gather`` and fails the concurrency tests;
- documents, filters and updates go through BSON on the way in, and results
  on the way out with the client's ``tz_aware``/``tzinfo``: what comes back is
  what PyMongo would return (plain ``str`` for enums, millisecond datetimes);
- ``fail_next(n)`` makes the next ``n`` operations raise ``AutoReconnect``,
  before they take effect (request lost) or after (reply lost);
- a closed client refuses further use, as PyMongo 4 does.

It is a stand-in, not a server: no network, no wire protocol, and mongomock's
query engine rather than MongoDB's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions
from mongomock.store import ServerStore
from pymongo.errors import AutoReconnect, InvalidOperation

__all__ = ["AsyncMongomockClient", "Call", "MongomockServer"]


def _to_wire(value: Any) -> Any:
    """A document (or pipeline) as the server receives it: BSON-encoded and decoded.

    Anything else (index keys, sort specs) is an argument PyMongo converts itself.
    """
    if isinstance(value, Mapping) or (
        isinstance(value, list) and all(isinstance(item, Mapping) for item in value)
    ):
        return bson.decode(bson.encode({"v": value}))["v"]
    return value


@dataclass
class Call:
    """One operation as sent: ``target`` is ``db.collection`` (or ``db`` for commands)."""

    target: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class MongomockServer:
    """The shared state behind every stand-in client: data, call log, faults."""

    def __init__(self) -> None:
        self.data = ServerStore()  # type: ignore[no-untyped-call]
        self.calls: list[Call] = []
        self.clients: list[AsyncMongomockClient] = []
        self._faults: deque[bool] = deque()

    def client(self, host: str | None = None, **options: Any) -> AsyncMongomockClient:
        """A new client; same signature as ``AsyncMongoClient(host, **options)``."""
        client = AsyncMongomockClient(self, host, **options)
        self.clients.append(client)
        return client

    @property
    def factory(self) -> Callable[..., Any]:
        """``client``, typed loosely so it fits ``MongoStore(client_factory=...)``."""
        return self.client

    def fail_next(self, n: int = 1, *, after: bool = False) -> None:
        """Make the next ``n`` operations raise ``AutoReconnect``.

        ``after=False``: the request is lost (no effect); ``after=True``: the
        operation takes effect and its reply is lost.
        """
        self._faults.extend([after] * n)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def run(self, client: AsyncMongomockClient, call: Call, op: Callable[[], Any]) -> Any:
        """Yield to the loop, log ``call``, apply a pending fault, run ``op``."""
        await asyncio.sleep(0)
        if client.closed:
            raise InvalidOperation("Cannot use AsyncMongoClient after close")
        self.calls.append(call)
        after = self._faults.popleft() if self._faults else None
        if after is False:
            raise AutoReconnect("stand-in outage: request lost")
        result = op()
        if after:
            raise AutoReconnect("stand-in outage: reply lost")
        return client.decode(result)


class AsyncMongomockClient:
    """The subset of ``AsyncMongoClient`` that ``MongoStore`` uses."""

    def __init__(
        self,
        server: MongomockServer,
        host: str | None = None,
        *,
        tz_aware: bool = False,
        tzinfo: tzinfo | None = None,
        **options: Any,
    ) -> None:
        self.server = server
        self.host = host
        self.options: dict[str, Any] = {"tz_aware": tz_aware, "tzinfo": tzinfo, **options}
        self.codec_options: CodecOptions[dict[str, Any]] = CodecOptions(
            tz_aware=tz_aware, tzinfo=tzinfo
        )
        self.sync: Any = mongomock.MongoClient(_store=server.data)
        self.closed = False

    def __getitem__(self, name: str) -> AsyncMongomockDatabase:
        return AsyncMongomockDatabase(self, name)

    @property
    def admin(self) -> AsyncMongomockDatabase:
        return self["admin"]

    async def close(self) -> None:
        self.closed = True

    def decode(self, value: Any) -> Any:
        """Results as PyMongo decodes them with this client's codec options."""
        if isinstance(value, Mapping):
            return bson.decode(bson.encode(value), codec_options=self.codec_options)
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        return value  # write results, None


class AsyncMongomockDatabase:
    def __init__(self, client: AsyncMongomockClient, name: str) -> None:
        self.client = client
        self.name = name

    def __getitem__(self, name: str) -> AsyncMongomockCollection:
        return AsyncMongomockCollection(self, name)

    async def command(self, command: str) -> dict[str, Any]:
        sync = self.client.sync[self.name]
        call = Call(self.name, "command", (command,))
        result: dict[str, Any] = await self.client.server.run(
            self.client, call, lambda: sync.command(command)
        )
        return result


class AsyncMongomockCollection:
    def __init__(self, database: AsyncMongomockDatabase, name: str) -> None:
        self.client = database.client
        self.full_name = f"{database.name}.{name}"
        self.sync = database.client.sync[database.name][name]

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_to_wire(arg) for arg in args)
        call = Call(self.full_name, method, args, kwargs)
        fn = getattr(self.sync, method)

        def op() -> Any:
            result = fn(*args, **kwargs)
            # find() and aggregate() give mongomock cursors: fetch them here.
            return list(result) if method in ("find", "aggregate") else result

        return await self.client.server.run(self.client, call, op)

    async def insert_one(self, document: Mapping[str, Any]) -> Any:
        return await self._run("insert_one", document)

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self._run("find_one", filter)  # type: ignore[no-any-return]

    async def find_one_and_update(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any] | None:
        return await self._run("find_one_and_update", filter, update, **kwargs)  # type: ignore[no-any-return]

    async def update_one(self, filter: Mapping[str, Any], update: Mapping[str, Any]) -> Any:
        return await self._run("update_one", filter, update)

    async def delete_one(self, filter: Mapping[str, Any]) -> Any:
        return await self._run("delete_one", filter)

    async def delete_many(self, filter: Mapping[str, Any]) -> Any:
        return await self._run("delete_many", filter)

    async def count_documents(self, filter: Mapping[str, Any]) -> int:
        return int(await self._run("count_documents", filter))

    async def create_index(self, keys: list[tuple[str, int]], **kwargs: Any) -> str:
        return str(await self._run("create_index", keys, **kwargs))

    async def aggregate(self, pipeline: list[Mapping[str, Any]]) -> AsyncMongomockCursor:
        # Like PyMongo: the command runs here, the cursor hands out its results.
        rows = await self._run("aggregate", pipeline)
        return AsyncMongomockCursor(self, rows=rows)

    def find(self, filter: Mapping[str, Any]) -> AsyncMongomockCursor:
        return AsyncMongomockCursor(self, filter=filter)


class AsyncMongomockCursor:
    """``find()``'s lazy cursor (sort/skip/limit, then ``to_list`` or ``async for``),
    or an aggregate's already-fetched results."""

    def __init__(
        self,
        collection: AsyncMongomockCollection,
        *,
        filter: Mapping[str, Any] | None = None,
        rows: list[dict[str, Any]] | None = None,
    ) -> None:
        self._collection = collection
        self._filter = filter
        self._rows = rows
        self._options: dict[str, Any] = {}

    def sort(self, keys: list[tuple[str, int]]) -> AsyncMongomockCursor:
        self._options["sort"] = keys
        return self

    def skip(self, n: int) -> AsyncMongomockCursor:
        self._options["skip"] = n
        return self

    def limit(self, n: int) -> AsyncMongomockCursor:
        self._options["limit"] = n
        return self

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = await self._collection._run("find", self._filter, **self._options)
        rows, self._rows = self._rows[:length], self._rows[length:] if length else []
        return rows

    def __aiter__(self) -> AsyncMongomockCursor:
        return self

    async def __anext__(self) -> dict[str, Any]:
        batch = await self.to_list(1)
        if not batch:
            raise StopAsyncIteration
        return batch[0]
