"""Persistence: a port (``Store``) and adapters chosen by database URL.

Adapters are imported only when chosen, so the MongoDB driver stays optional.
"""

from __future__ import annotations

from agentpty.domain.errors import InvalidInput
from agentpty.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    """Build (not connect) the adapter for ``url``; call ``await store.open()`` next."""
    if url.startswith("sqlite:///"):
        from agentpty.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from agentpty.store.mongo import MongoStore

        store: Store = MongoStore(url)
        return store
    raise InvalidInput(
        f"unsupported database URL scheme in {url.split('://', 1)[0]!r}: "
        "use sqlite:///<path> or mongodb://..."
    )
