"""Per-project asyncio locks and conditions that exist only while in use.

A server keeps hundreds of projects, most of them idle for days; a lock or
condition per project kept forever costs about 1 KiB each (their waiter
deques), for nothing. These are made on first use and dropped when the last
user leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["KeyedConditions", "KeyedLocks"]

T = TypeVar("T", asyncio.Lock, asyncio.Condition)


class _Entry(Generic[T]):
    __slots__ = ("item", "users")

    def __init__(self, item: T) -> None:
        self.item: T = item
        self.users = 0


class _Keyed(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory: Callable[[], T] = factory
        self._entries: dict[str, _Entry[T]] = {}

    @contextlib.contextmanager
    def _use(self, key: str) -> Iterator[T]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self._factory())
        entry.users += 1
        try:
            yield entry.item
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def __len__(self) -> int:
        """How many keys have one now (in use)."""
        return len(self._entries)


class KeyedLocks(_Keyed[asyncio.Lock]):
    """``async with locks.hold(key):`` serialises the holders of one key."""

    def __init__(self) -> None:
        super().__init__(asyncio.Lock)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        with self._use(key) as lock:
            async with lock:
                yield


class KeyedConditions(_Keyed[asyncio.Condition]):
    """Wait for a change of one key's state; notifying a key nobody waits on is free."""

    def __init__(self) -> None:
        super().__init__(asyncio.Condition)

    async def wait_until(self, key: str, done: Callable[[], Awaitable[bool]]) -> None:
        """Return once ``await done()`` is true, checked again on every ``notify(key)``."""
        with self._use(key) as condition:
            async with condition:
                while not await done():
                    await condition.wait()

    async def notify(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            async with entry.item:
                entry.item.notify_all()
