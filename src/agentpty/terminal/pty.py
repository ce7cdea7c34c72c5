"""A child process on a fresh PTY, driven by the event loop.

The child is the leader of its own session and process group, with the PTY as
its controlling terminal. Output is read with ``loop.add_reader`` on the
non-blocking master fd; exit is seen through a pidfd, also with
``add_reader``: no threads, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Mapping, Sequence

from agentpty.domain.errors import SessionStartError
from agentpty.host.agent_signals import reset_for_exec
from agentpty.host.containment import signal_terminal
from agentpty.terminal.ptyio import PtyIO

__all__ = ["PtyProcess", "exit_code_of", "session_members"]

log = logging.getLogger(__name__)


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
        self._io: PtyIO | None = None
        self._pidfd = -1
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
        self._io = PtyIO(master, self._on_output, f"PTY of pid {self._popen.pid}")
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

    # -- output and input (``PtyIO``)

    def pause_reading(self) -> None:
        if self._io is not None:
            self._io.pause_reading()

    def resume_reading(self) -> None:
        if self._io is not None:
            self._io.resume_reading()

    def _on_child_exit(self) -> None:
        assert self._loop is not None and self._popen is not None and self._io is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        returncode = self._popen.wait()
        # Members of the group that outlive the leader get the hangup a
        # closing terminal would give them; none is left behind.
        self.signal_session(signal.SIGHUP)
        self._io.drain()  # what the child wrote before it exited
        self._io.close()
        self.exit_code = exit_code_of(returncode)
        self._exited = True
        assert self._exit_future is not None
        self._exit_future.set_result(self.exit_code)
        self._on_exit(self.exit_code)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the child (``InvalidInput`` when it is not reading its input)."""
        if self._io is not None:
            self._io.write(data)

    # -- control

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size and tell the foreground group (SIGWINCH), even if unchanged."""
        self.rows, self.cols = rows, cols
        if self._io is None or self._io.fd < 0:
            return
        self._io.set_size(rows, cols)
        self.send_signal(signal.SIGWINCH)

    def send_signal(self, sig: int) -> None:
        """Signal the child as the keyboard would: SIGINT to the foreground job
        only, others to the child's group too (``signal_terminal``)."""
        if self._popen is None or self._exited or self._io is None:
            return
        signal_terminal(self._io.fd, self._popen.pid, sig)

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
