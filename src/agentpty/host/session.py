"""One session inside the host: the PTY master, the keeper, the output ring, the idle policy.

A server following the session may borrow its terminal (``lend``): it then
reads and writes the PTY master itself and appends what it reads to the
shared ring, and the host stays out of the hot path until it takes the
terminal back (``take_back``: the server let go, or its connection is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentpty.host import containment
from agentpty.host.keeper import PID_RECORD
from agentpty.host.ptyread import read_ready
from agentpty.host.ring import SharedRing
from agentpty.host.zygote import Zygote

__all__ = ["HostSession"]

log = logging.getLogger(__name__)

READ_SIZE = 65536
MAX_PENDING_INPUT = 4 * 1024 * 1024


class HostSession:
    """A session's process tree and terminal, owned by the host.

    ``on_output(session, bytes)`` runs for every read; ``on_ended(session)`` once
    the agent itself exited and its last output was read (what it left behind
    is then being stopped); ``on_exit(session)``
    once the whole tree is gone (the keeper exited) and the last output was read.
    """

    def __init__(
        self,
        key: str,
        spec: dict[str, Any],
        *,
        zygote: Zygote,
        cgroup: Path | None,
        ring_size: int,
        on_output: Callable[[HostSession, bytes], None],
        on_ended: Callable[[HostSession], None],
        on_exit: Callable[[HostSession], None],
    ) -> None:
        self.key = key
        self.argv: list[str] = list(spec["argv"])
        self.meta: dict[str, Any] = dict(spec.get("meta") or {})
        self.rows, self.cols = int(spec.get("rows", 24)), int(spec.get("cols", 80))
        self.idle_timeout: float | None = spec.get("idle_timeout")
        self.grace = float(spec.get("grace", 3.0))
        self.cgroup = cgroup
        self._zygote = zygote
        self.containment = "cgroup" if cgroup is not None else "process-tree"
        self.ring = SharedRing.create(ring_size)
        #: A server reads and writes the PTY itself (see ``lend``).
        self.lent = False
        self._lent_head = 0
        self.state = "starting"
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.start_error: str | None = None
        self.pid: int | None = None
        self.keeper = -1
        self.clients = 0
        self.paused = False
        self._spec = spec
        self._on_output = on_output
        self._on_ended = on_ended
        self._on_exit = on_exit
        #: The server acknowledged the exit: forget the session once it is gone.
        self.acked = False
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self.started = self._loop.create_future()
        self.exited = self._loop.create_future()
        self._master = -1
        self._status = -1
        self._status_data = bytearray()
        self._exit_pipe = -1
        self._exit_data = bytearray()
        self._reading = False
        self._out = bytearray()
        self._sweeping = False
        self._kill_handle: asyncio.TimerHandle | None = None
        self._idle_handle: asyncio.TimerHandle | None = None

    # -- start

    def spawn(self) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
        status_r, status_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self.keeper = self._zygote.spawn(self._spec, [slave, status_w, exit_w], self.cgroup)
        except OSError:
            for fd in (master, status_r, exit_r):
                os.close(fd)
            raise
        finally:
            for fd in (slave, status_w, exit_w):
                os.close(fd)
        os.set_blocking(master, False)
        self._master = master
        self._status = status_r
        self._loop.add_reader(status_r, self._status_ready)
        self._exit_pipe = exit_r
        self._loop.add_reader(exit_r, self._exit_ready)
        self.resume_reading()

    def _status_ready(self) -> None:
        data = os.read(self._status, 64)
        if data:
            self._status_data += data
            return
        self._status_done()

    def _finish_status(self) -> None:
        """Read the status pipe to its end now (its writers are gone: no wait)."""
        while self._status >= 0:
            data = os.read(self._status, 64)
            if not data:
                self._status_done()
                return
            self._status_data += data

    def _status_done(self) -> None:
        self._loop.remove_reader(self._status)
        os.close(self._status)
        self._status = -1
        records = [
            PID_RECORD.unpack_from(self._status_data, offset)
            for offset in range(0, len(self._status_data) - PID_RECORD.size + 1, PID_RECORD.size)
        ]
        for tag, value in records:
            if tag == b"P":
                self.pid = value
            elif tag == b"E":
                self.start_error = f"cannot start {self.argv[0]!r}: {os.strerror(value)}"
        if self.pid is None and self.start_error is None:
            self.start_error = "the session's keeper failed before starting the agent"
        if self.start_error is None and self.state == "starting":
            self.state = "running"
        log.info(
            "session %s: %s (pid %s, containment %s)",
            self.key,
            self.start_error or "started",
            self.pid,
            self.containment,
        )
        self.started.set_result(None)
        self.arm_idle()

    # -- output

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._master)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and self._master >= 0 and not self.paused and not self.lent:
            self._loop.add_reader(self._master, self._read_ready)
            self._reading = True

    def _read_ready(self) -> None:
        data, ended = read_ready(self._master, READ_SIZE, f"session {self.key}")
        if ended:
            self.pause_reading()
        if data:
            self._output(data)

    def _output(self, data: bytes) -> None:
        self.ring.append(data)
        self.last_activity = self._loop.time()
        self._on_output(self, data)

    # -- lending the terminal to a server

    @property
    def master(self) -> int:
        return self._master

    def lend(self) -> None:
        """Stop reading: the borrowing server reads from now on (what was there went out)."""
        self._drain()
        self.pause_reading()
        self.lent = True
        self._lent_head = self.ring.head

    def take_back(self) -> None:
        """Read the PTY again, after what the borrower appended to the ring."""
        if not self.lent:
            return
        self.lent = False
        if self.ring.fd >= 0 and self.ring.reload() != self._lent_head:
            self.last_activity = self._loop.time()
        if self.state == "exited":
            self._drain()  # what no borrower read
            self._close_master()
        else:
            self.resume_reading()

    def _close_master(self) -> None:
        if self._master < 0:
            return
        self.pause_reading()
        if self._out:
            self._loop.remove_writer(self._master)
        os.close(self._master)
        self._master = -1

    # -- input and control

    def write(self, data: bytes) -> None:
        if self._master < 0 or self.state != "running":
            return
        if len(self._out) + len(data) > MAX_PENDING_INPUT:
            log.warning("session %s: the agent is not reading its input; input dropped", self.key)
            return
        self.last_activity = self._loop.time()
        was_empty = not self._out
        self._out += data
        if was_empty:
            self._write_ready()

    def _write_ready(self) -> None:
        try:
            written = os.write(self._master, self._out)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.warning("session %s: PTY write failed: %s", self.key, exc)
            written = len(self._out)
        del self._out[:written]
        if self._out:
            self._loop.add_writer(self._master, self._write_ready)
        else:
            self._loop.remove_writer(self._master)

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        if self._master >= 0:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            self.send_signal(signal.SIGWINCH)

    def send_signal(self, sig: int) -> None:
        """Signal the agent as the keyboard would (``containment.signal_terminal``)."""
        if self.pid is None or self.state != "running":
            return
        containment.signal_terminal(self._master, self.pid, sig)

    def set_clients(self, count: int) -> None:
        self.clients = count
        self.last_activity = self._loop.time()
        self.arm_idle()

    # -- stop

    def stop(self, reason: str) -> None:
        """Hang up and terminate every process of the session; SIGKILL after the grace period."""
        if self.state == "exited":
            return
        if self.reason is None:
            self.reason = reason
        self._sweep()

    def _agent_exited(self, code: int) -> None:
        """The agent exited (the keeper reaped it): report it, stop what it left behind."""
        if self.state in ("exiting", "exited"):
            return
        if self._status >= 0:
            self._finish_status()
        self.exit_code = code
        self.state = "exiting"
        self._drain()  # its last words go out before its exit (a borrower drains its own)
        self._on_ended(self)
        # The session ends with its agent: what it left behind is stopped too.
        self._sweep()

    def _sweep(self) -> None:
        if self._sweeping:
            return
        self._sweeping = True
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGCONT):
            containment.signal_all(self.keeper, self.cgroup, sig)
        self._kill_handle = self._loop.call_later(self.grace, self._kill)

    def _kill(self) -> None:
        self._kill_handle = None
        if self.state != "exited":
            log.info("session %s: still running after %.1f s: SIGKILL", self.key, self.grace)
            containment.kill_all(self.keeper, self.cgroup)

    def _exit_ready(self) -> None:
        data = os.read(self._exit_pipe, 64)
        if data:
            self._exit_data += data
            # "L" + code: the agent was reaped; "X" + code: the keeper is leaving.
            if len(self._exit_data) >= PID_RECORD.size:
                tag, code = PID_RECORD.unpack_from(self._exit_data)
                if tag == b"L":
                    self._agent_exited(code)
            return
        # EOF: the keeper is gone. It exits once it has no descendant left
        # (it is their subreaper): this is the final sweep's proof.
        self._loop.remove_reader(self._exit_pipe)
        os.close(self._exit_pipe)
        self._exit_pipe = -1
        # Killed before it could say: the host's own kill_now, or an outsider.
        self._agent_exited(128 + signal.SIGKILL)
        if self._status >= 0:
            self._finish_status()
        for handle in (self._kill_handle, self._idle_handle):
            if handle is not None:
                handle.cancel()
        self._drain()
        if not self.lent:
            # Lent, the master stays open: the agent's last output may still be
            # in the PTY for a borrower that has not fetched its fds yet.
            self._close_master()
        if self.cgroup is not None:
            containment.kill_all(self.keeper, self.cgroup)
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
        self.state = "exited"
        log.info("session %s: exited with %s (%s)", self.key, self.exit_code, self.reason)
        self.exited.set_result(self.exit_code)
        self._on_exit(self)

    def _drain(self) -> None:
        while self._master >= 0 and not self.lent:
            try:
                data = os.read(self._master, READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._output(data)

    def discard(self) -> None:
        """The host forgets the session: free its ring (its exit was recorded)."""
        self.lent = False
        self._close_master()
        self.ring.close()

    def kill_now(self) -> None:
        """SIGKILL the whole tree at once (the host is going away)."""
        if self.keeper > 0 and self._exit_pipe >= 0:
            containment.kill_all(self.keeper, self.cgroup)

    # -- idle policy

    def arm_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self.idle_timeout is None or self.state != "running" or self.clients:
            return
        remaining = self.last_activity + self.idle_timeout - self._loop.time()
        self._idle_handle = self._loop.call_later(max(remaining, 0), self._check_idle)

    def _check_idle(self) -> None:
        self._idle_handle = None
        if self.idle_timeout is None or self.clients or self.state != "running":
            return
        if self.lent and self.ring.reload() != self._lent_head:
            # The borrower's reads are the agent's output: activity.
            self._lent_head = self.ring.head
            self.last_activity = self._loop.time()
        if self.last_activity + self.idle_timeout > self._loop.time():
            self.arm_idle()
            return
        log.info(
            "session %s: idle for %.0f s with no client: stopping", self.key, self.idle_timeout
        )
        self.stop("idle")

    def info(self) -> dict[str, Any]:
        return {
            "key": self.key,
            # For a client the session ended with its agent (the rest is being stopped).
            "state": "exited" if self.state == "exiting" else self.state,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "rows": self.rows,
            "cols": self.cols,
            "containment": self.containment,
            "meta": self.meta,
        }
