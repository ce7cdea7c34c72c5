"""A child process on a fresh PTY, driven by the event loop.

The child is the leader of its own session and process group, with the PTY as
its controlling terminal. Output is read with ``loop.add_reader`` on the
non-blocking master fd; exit is seen through a pidfd, also with
``add_reader``: no threads, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Mapping, Sequence

from agentpty.domain.errors import InvalidInput, SessionStartError
from agentpty.host.agent_signals import reset_for_exec
from agentpty.host.containment import signal_terminal

__all__ = ["MAX_PENDING_INPUT", "PtyProcess", "exit_code_of", "session_members"]

log = logging.getLogger(__name__)

READ_SIZE = 65536
#: Input accepted but not yet taken by the child; beyond this writes are refused.
MAX_PENDING_INPUT = 4 * 1024 * 1024


def exit_code_of(returncode: int) -> int:
    """Shell convention: a child killed by signal N exits with 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def session_members(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose session id is ``sid`` (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start after ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def _set_controlling_tty() -> None:  # pragma: no cover - runs in the child
    # Runs after setsid(): stdin is the PTY slave, make it our controlling tty
    # so job control and SIGINT from ^C work as in a real terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    reset_for_exec()


def _winsize(rows: int, cols: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


class PtyProcess:
    """One process on one PTY.

    ``on_output(bytes)`` is called from the event loop for every read;
    ``on_exit(exit_code)`` once, after the last output was delivered.
    The process is this server's child: it does not outlive the server.
    """

    containment = "process-group"
    survives_server = False
    owns_idle = False
    exit_reason: str | None = None

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        rows: int = 24,
        cols: int = 80,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.rows, self.cols = rows, cols
        self._on_output = on_output
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._pidfd = -1
        self._reading = False
        self._out = bytearray()
        self._exited = False
        self.exit_code: int | None = None
        self._exit_future: asyncio.Future[int] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def spawn(self) -> None:
        """Start the child; raise ``SessionStartError`` if it cannot be."""
        self._loop = asyncio.get_running_loop()
        self._exit_future = self._loop.create_future()
        master, slave = os.openpty()
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, _winsize(self.rows, self.cols))
            self._popen = subprocess.Popen(
                self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                preexec_fn=_set_controlling_tty,
                close_fds=True,
            )
        except OSError as exc:
            os.close(master)
            raise SessionStartError(f"cannot start {self.argv[0]!r}: {exc.strerror}") from exc
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._pidfd = os.pidfd_open(self._popen.pid)
        self._loop.add_reader(self._pidfd, self._on_child_exit)
        self.resume_reading()

    async def launch(self) -> None:
        self.spawn()

    async def adopt(self) -> None:
        raise SessionStartError("an in-process session cannot be adopted")

    def set_clients(self, count: int) -> None:
        """The idle policy of an in-process session runs in ``TerminalSession``."""

    def detach(self) -> None:
        """An in-process session cannot be left running: the server stops it on shutdown."""

    # -- output

    def pause_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._master)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and self._master >= 0 and self._loop is not None:
            self._loop.add_reader(self._master, self._read_ready)
            self._reading = True

    def _read_ready(self) -> None:
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: every slave fd is closed (the child and its heirs are gone).
            if exc.errno != errno.EIO:
                log.warning("read from PTY of pid %s failed: %s", self.pid, exc)
            self.pause_reading()
            return
        if not data:
            self.pause_reading()
            return
        self._on_output(data)

    def _drain(self) -> None:
        """Deliver what the child wrote before it exited."""
        while self._master >= 0:
            try:
                data = os.read(self._master, READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._on_output(data)

    def _on_child_exit(self) -> None:
        assert self._loop is not None and self._popen is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        returncode = self._popen.wait()
        # Members of the group that outlive the leader get the hangup a
        # closing terminal would give them; none is left behind.
        self.signal_session(signal.SIGHUP)
        self._drain()
        self.pause_reading()
        if self._out:
            self._loop.remove_writer(self._master)
        os.close(self._master)
        self._master = -1
        self.exit_code = exit_code_of(returncode)
        self._exited = True
        assert self._exit_future is not None
        self._exit_future.set_result(self.exit_code)
        self._on_exit(self.exit_code)

    # -- input

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the child without blocking the loop.

        Raises ``InvalidInput`` when more than ``MAX_PENDING_INPUT`` bytes are
        already waiting (the child is not reading its input).
        """
        if self._master < 0:
            return
        if len(self._out) + len(data) > MAX_PENDING_INPUT:
            raise InvalidInput("the process is not reading its input; input refused")
        was_empty = not self._out
        self._out += data
        if was_empty:
            self._write_ready()

    def _write_ready(self) -> None:
        assert self._loop is not None
        try:
            written = os.write(self._master, self._out)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.warning("write to PTY of pid %s failed: %s", self.pid, exc)
            self._out.clear()
            self._loop.remove_writer(self._master)
            return
        del self._out[:written]
        if self._out:
            self._loop.add_writer(self._master, self._write_ready)
        else:
            self._loop.remove_writer(self._master)

    # -- control

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size and tell the foreground group (SIGWINCH), even if unchanged."""
        self.rows, self.cols = rows, cols
        if self._master < 0:
            return
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, _winsize(rows, cols))
        self.send_signal(signal.SIGWINCH)

    def send_signal(self, sig: int) -> None:
        """Signal the child as the keyboard would: SIGINT to the foreground job
        only, others to the child's group too (``signal_terminal``)."""
        if self._popen is None or self._exited:
            return
        signal_terminal(self._master, self._popen.pid, sig)

    def signal_session(self, sig: int) -> int:
        """Send ``sig`` to every process still in the child's session; return how many.

        Jobs of an interactive shell live in process groups of their own, so
        signalling the leader's group is not enough to leave nothing behind.
        """
        if self._popen is None:
            return 0
        count = 0
        for pid in session_members(self._popen.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                count += 1
        return count

    async def wait(self) -> int:
        assert self._exit_future is not None, "not spawned"
        return await asyncio.shield(self._exit_future)

    async def terminate(self, grace: float = 3.0) -> int:
        """Hang up and terminate the group; SIGKILL it after ``grace`` seconds.

        Interactive shells ignore SIGTERM but exit on SIGHUP, so both are sent.
        Safe to call twice and to cancel (the process keeps being reaped).
        """
        if self._exit_future is None:
            return 0
        if not self._exited:
            self.send_signal(signal.SIGHUP)
            self.send_signal(signal.SIGTERM)
            self.send_signal(signal.SIGCONT)
            try:
                async with asyncio.timeout(grace):
                    await self.wait()
            except TimeoutError:
                self.send_signal(signal.SIGKILL)
        code = await self.wait()
        # Always (also when the leader exited within the grace period): whatever
        # it left behind in its session goes too.
        self.signal_session(signal.SIGKILL)
        return code
