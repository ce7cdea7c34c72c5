"""Reading and writing a PTY master on the event loop, without blocking it.

Shared by the two ways the server drives a terminal: a PTY it opened for its
own child (``PtyProcess``) and one it borrowed from the session host
(``HostedProcess``). Reads wait with ``loop.add_reader``; writes are queued
and flushed with ``loop.add_writer`` when the agent does not keep up.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import termios
from collections.abc import Callable

from agentpty.domain.errors import InvalidInput
from agentpty.host.ptyread import read_ready

__all__ = ["MAX_PENDING_INPUT", "READ_SIZE", "PtyIO"]

log = logging.getLogger(__name__)

#: The most one read callback gathers before it hands the output on.
READ_SIZE = 65536
#: Input accepted but not yet taken by the agent; beyond this writes are refused.
MAX_PENDING_INPUT = 4 * 1024 * 1024


class PtyIO:
    """A non-blocking PTY master fd: ``on_output(bytes)`` for what is read.

    Reading stops by itself at EOF or EIO (no slave is open any more: the
    agent and its heirs are gone); ``close`` closes the fd.
    """

    def __init__(self, fd: int, on_output: Callable[[bytes], None], name: str) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.name = name
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._out = bytearray()

    # -- output

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and self.fd >= 0:
            self._loop.add_reader(self.fd, self._read_ready)
            self._reading = True

    def _read_ready(self) -> None:
        data, ended = read_ready(self.fd, READ_SIZE, self.name)
        if ended:
            self.pause_reading()
        if data:
            self._on_output(data)

    def drain(self) -> None:
        """Deliver what is left to read now (the agent exited)."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._on_output(data)

    # -- input

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the agent.

        Raises ``InvalidInput`` when more than ``MAX_PENDING_INPUT`` bytes are
        already waiting (the agent is not reading its input).
        """
        if self.fd < 0:
            return
        if len(self._out) + len(data) > MAX_PENDING_INPUT:
            raise InvalidInput("the process is not reading its input; input refused")
        was_empty = not self._out
        self._out += data
        if was_empty:
            self._write_ready()

    def _write_ready(self) -> None:
        try:
            written = os.write(self.fd, self._out)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.warning("%s: PTY write failed: %s", self.name, exc)
            self._out.clear()
            self._loop.remove_writer(self.fd)
            return
        del self._out[:written]
        if self._out:
            self._loop.add_writer(self.fd, self._write_ready)
        else:
            self._loop.remove_writer(self.fd)

    def set_size(self, rows: int, cols: int) -> None:
        """The terminal's window size (the kernel signals SIGWINCH if it changed)."""
        if self.fd >= 0:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        if self.fd < 0:
            return
        self.pause_reading()
        if self._out:
            self._loop.remove_writer(self.fd)
            self._out.clear()
        os.close(self.fd)
        self.fd = -1
