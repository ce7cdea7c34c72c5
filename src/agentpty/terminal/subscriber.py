"""What one attached client gets from a session: bounded frames of output bytes.

A ``Subscriber`` holds at most ``backlog`` bytes and hands out at most
``frame`` bytes at a time, so a client whose socket has stopped draining
costs at most about ``backlog + frame`` bytes. When the backlog would
overflow it is dropped and the client's next frame is a fresh snapshot of
the screen (a *resync*). While every client is ``behind``, the session stops
reading the agent's output for a moment (``TerminalSession``'s flow control).

Output is UTF-8 bytes cut at character boundaries (``complete_utf8``), so
any frame decodes on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["RESET", "Frame", "Subscriber", "complete_utf8"]

#: Clears the client's terminal before a snapshot is drawn.
RESET = "\x1bc"


class _Source(Protocol):
    """What a subscriber needs of its session."""

    @property
    def exit_code(self) -> int | None: ...

    def snapshot(self) -> str: ...

    def caught_up(self) -> None: ...


def complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a UTF-8 character.

    Only an incomplete multi-byte sequence at the very end is held back (at
    most 3 bytes); invalid bytes elsewhere pass through and are replaced by
    whoever decodes them.
    """
    size = len(data)
    for back in range(1, min(4, size) + 1):
        byte = data[size - back]
        if byte < 0x80:
            return size
        if byte >= 0xC0:  # a lead byte: how long its sequence is
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return size - back if length > back else size
    return size


@dataclass(frozen=True)
class Frame:
    """What a subscriber receives: output (UTF-8 bytes, whole characters), a nudge, or the end.

    A ``nudge`` carries nothing: whoever called ``Subscriber.nudge`` has news
    for the client (e.g. the agent's state) and the relay fetches it.
    """

    kind: Literal["output", "nudge", "closed"]
    data: bytes = b""
    exit_code: int | None = None

    @property
    def text(self) -> str:
        """The output decoded (invalid bytes replaced)."""
        return self.data.decode("utf-8", "replace")


_NUDGE = Frame("nudge")


class Subscriber:
    """One attached client's bounded view of a session's output.

    It holds at most ``backlog`` bytes and hands out at most ``frame`` bytes
    at a time (``get``), so a client whose socket has stopped draining costs
    at most about ``backlog + frame`` bytes before it is resynchronised.
    """

    # Slots, a list and a future made only while waiting: an idle client's
    # subscriber is a few hundred bytes (a deque or an Event is ~0.7 KiB each).
    __slots__ = (
        "_chunks", "_closed", "_frame", "_limit", "_nudged", "_resync", "_session", "_size",
        "_waiter", "resyncs",
    )  # fmt: skip

    def __init__(self, session: _Source, backlog: int, frame: int) -> None:
        self._session = session
        self._limit = backlog
        self._frame = frame
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._resync = False
        self._nudged = False
        self._closed = False
        self.resyncs = 0

    @property
    def backlog(self) -> int:
        """Bytes waiting for this client."""
        return self._size

    @property
    def behind(self) -> bool:
        """A quarter of the backlog waits (and no resync is due): hold the agent's output.

        A quarter, not more: output already read and coalesced (up to two
        reads) still arrives after the hold begins, and must fit.
        """
        return self._size > self._limit // 4 and not self._resync and not self._closed

    def _feed(self, data: bytes) -> None:
        if self._resync:
            return
        if self._size + len(data) > self._limit:
            self._chunks.clear()
            self._size = 0
            self._resync = True
            self.resyncs += 1
        else:
            self._chunks.append(data)
            self._size += len(data)
        self._wake()

    def nudge(self) -> None:
        """Make ``get`` return a ``nudge`` frame next (before any output).

        One waiting task serves the client's output and its other news, so an
        idle client costs one task, not one per source.
        """
        self._nudged = True
        self._wake()

    def _close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> bytes:
        """Up to ``frame`` bytes of whole chunks (always at least one chunk)."""
        chunks = self._chunks
        if len(chunks) == 1 or self._size <= self._frame:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._size = 0
            return data
        count, size = 1, len(chunks[0])
        while count < len(chunks) and size + len(chunks[count]) <= self._frame:
            size += len(chunks[count])
            count += 1
        data = b"".join(chunks[:count])
        del chunks[:count]
        self._size -= size
        return data

    async def get(self) -> Frame:
        """Wait for the next frame; after ``closed`` every call returns ``closed`` again."""
        while True:
            if self._nudged:
                self._nudged = False
                return _NUDGE
            if self._resync:
                self._resync = False
                return Frame("output", (RESET + self._session.snapshot()).encode())
            if self._chunks:
                data = self._take()
                if self._size <= self._limit // 4:
                    self._session.caught_up()
                return Frame("output", data)
            if self._closed:
                return Frame("closed", exit_code=self._session.exit_code)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
