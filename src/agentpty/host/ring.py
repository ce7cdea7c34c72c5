"""A session's output ring in a memfd, so the host and the server can both append to it.

While a server follows a session, it reads the PTY itself (one hop fewer for
every byte and keystroke, see ``docs/session-host.md``) and appends what it
read here; while no server does, the host reads and appends. Whoever attaches
next replays the same bytes either way.

Layout: the total number of bytes ever appended (u64, little-endian) at
offset 0, then ``capacity`` bytes of data, written round. ``pwrite`` and
``pread`` rather than a mapping: the ring's pages are counted once, as the
memfd's, and never in the server's resident memory. The data goes first and
the count after it, so a writer killed between the two loses that read and
never corrupts what was already there.
"""

from __future__ import annotations

import os
import struct

__all__ = ["SharedRing"]

_HEAD = struct.Struct("<Q")


class SharedRing:
    """The last ``capacity`` bytes of a session's output, in a file both sides can write."""

    def __init__(self, fd: int, capacity: int) -> None:
        self.fd = fd
        self.capacity = capacity
        #: Bytes appended since the ring was made (this writer's view: see ``reload``).
        self.head = self.reload()

    @classmethod
    def create(cls, capacity: int) -> SharedRing:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, not {capacity}")
        fd = os.memfd_create("agentpty-ring", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, _HEAD.size + capacity)
        except OSError:
            os.close(fd)
            raise
        return cls(fd, capacity)

    @classmethod
    def open(cls, fd: int) -> SharedRing:
        """The ring in ``fd`` (received from the host); takes ownership of ``fd``."""
        size = os.fstat(fd).st_size
        if size <= _HEAD.size:
            os.close(fd)
            raise ValueError(f"not a ring: {size} bytes")
        return cls(fd, size - _HEAD.size)

    def reload(self) -> int:
        """Read the count again (the other side may have appended meanwhile)."""
        raw = os.pread(self.fd, _HEAD.size, 0)
        self.head = _HEAD.unpack(raw)[0] if len(raw) == _HEAD.size else 0
        return self.head

    def append(self, data: bytes) -> None:
        size = len(data)
        if not size:
            return
        capacity = self.capacity
        view = memoryview(data)
        if size > capacity:
            view = view[size - capacity :]
        position = (self.head + size - len(view)) % capacity
        first = min(len(view), capacity - position)
        os.pwrite(self.fd, view[:first], _HEAD.size + position)
        if first < len(view):
            os.pwrite(self.fd, view[first:], _HEAD.size)
        self.head += size
        os.pwrite(self.fd, _HEAD.pack(self.head), 0)

    def contents(self) -> bytes:
        """The last ``capacity`` bytes appended (fewer if fewer were), oldest first."""
        head = self.reload()
        size = min(head, self.capacity)
        start = (head - size) % self.capacity
        first = min(size, self.capacity - start)
        data = os.pread(self.fd, first, _HEAD.size + start)
        if first < size:
            data += os.pread(self.fd, size - first, _HEAD.size)
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
