"""A terminal process that lives in the session host; this server only follows it.

Once started or adopted, the server borrows the session's terminal: it reads
and writes the PTY master itself (``PtyIO``) and appends what it reads to the
host's shared ring, so every byte and keystroke skips one process and one
socket. Control (resize, signals, stop) and the exit still go through the
host, and the host reads again as soon as this server lets go or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentpty.domain.errors import SessionStartError
from agentpty.host.client import HostClient, HostError, HostLost
from agentpty.host.ring import SharedRing
from agentpty.terminal.ptyio import PtyIO

__all__ = ["HOST_LOST_EXIT", "HostedProcess", "hosted_factory"]

log = logging.getLogger(__name__)

#: Exit code reported for a session whose host died (its keeper killed the tree).
HOST_LOST_EXIT = 128 + signal.SIGKILL
SIGNAL_NAMES: dict[int, str] = {
    signal.SIGINT: "SIGINT",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


class HostedProcess:
    """The ``TerminalProcess`` of a session owned by the host (see ``terminal/process.py``)."""

    survives_server = True
    owns_idle = True

    def __init__(
        self,
        client: HostClient,
        key: str,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        rows: int,
        cols: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        idle_timeout: float | None,
        grace: float,
        meta: Mapping[str, Any],
    ) -> None:
        self.client = client
        self.key = key
        self.argv = list(argv)
        self.cwd = cwd
        #: Until spawned: then only the host needs it.
        self._env: dict[str, str] | None = dict(env)
        self.rows, self.cols = rows, cols
        self.idle_timeout = idle_timeout
        self.grace = grace
        self.meta = dict(meta)
        self._on_output = on_output
        self._on_exit = on_exit
        self._pid: int | None = None
        self.exit_code: int | None = None
        self.exit_reason: str | None = None
        self.containment = "host"
        self._exit_future: asyncio.Future[int] | None = None
        #: The borrowed terminal and ring (None: the host reads and writes it).
        self._io: PtyIO | None = None
        self._ring: SharedRing | None = None
        self._borrowing = False
        self._exit_pending: tuple[int, str | None] | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    def _accept(self, info: Mapping[str, Any]) -> None:
        self._pid = info.get("pid")
        self.containment = str(info.get("containment", self.containment))
        self.rows, self.cols = int(info.get("rows", self.rows)), int(info.get("cols", self.cols))

    async def launch(self) -> None:
        self._exit_future = asyncio.get_running_loop().create_future()
        try:
            await self.client.connect(start=True)
            self.client.register(self.key, self)
            info = await self.client.request(
                "spawn",
                key=self.key,
                argv=self.argv,
                cwd=self.cwd,
                env=self._env,
                rows=self.rows,
                cols=self.cols,
                idle_timeout=self.idle_timeout,
                grace=self.grace,
                meta=self.meta,
            )
        except HostError as exc:
            self.client.unregister(self.key, self)
            raise SessionStartError(str(exc)) from exc
        self._env = None
        self._accept(info)
        await self._borrow()

    async def adopt(self) -> None:
        self._exit_future = asyncio.get_running_loop().create_future()
        self.client.register(self.key, self)
        try:
            info = await self.client.request("attach", key=self.key)
        except HostError as exc:
            self.client.unregister(self.key, self)
            raise SessionStartError(f"cannot adopt session {self.key}: {exc}") from exc
        self._accept(info)
        await self._borrow()

    async def _borrow(self) -> None:
        """Read and write the PTY here; if the host refuses, it keeps doing both.

        An exit reported meanwhile waits until the borrow is settled: once the
        host has lent the terminal it no longer reads it, so the agent's last
        output is in the PTY for this server to drain before the exit.
        """
        self._borrowing = True
        try:
            master, ring = await self.client.borrow(self.key)
        except (HostError, OSError, ValueError) as exc:
            # E.g. the agent exited first: the host drained it and reports the exit.
            log.info("session %s: the host keeps its terminal (%s)", self.key, exc)
        else:
            if self.exit_code is None:
                self._ring = ring
                self._io = PtyIO(master, self._read, f"session {self.key}")
                self._io.resume_reading()
            else:  # the host was lost meanwhile
                os.close(master)
                ring.close()
        finally:
            self._borrowing = False
        if self._exit_pending is not None:
            exit_code, reason = self._exit_pending
            self._exit_pending = None
            self.host_exited(exit_code, reason)

    def _read(self, data: bytes) -> None:
        assert self._ring is not None
        # Into the ring first: a server killed now still leaves it for the next one.
        self._ring.append(data)
        self._on_output(data)

    def _let_go(self, *, drain: bool) -> None:
        if self._io is not None:
            if drain:
                self._io.drain()
            self._io.close()
            self._io = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    # -- from the host

    def host_output(self, data: bytes) -> None:
        self._on_output(data)

    def host_exited(self, exit_code: int, reason: str | None) -> None:
        if self.exit_code is not None:
            return
        if self._borrowing:
            self._exit_pending = (exit_code, reason)
            return
        # Its last output is still in the PTY when the host reports the exit.
        self._let_go(drain=True)
        self.client.unregister(self.key, self)
        self.client.notify("ack", key=self.key)
        self._finish(exit_code, reason)

    def host_lost(self) -> None:
        self._let_go(drain=False)
        if self.exit_code is None:
            self._finish(HOST_LOST_EXIT, "session host died")

    def _finish(self, exit_code: int, reason: str | None) -> None:
        self.exit_code = exit_code
        self.exit_reason = reason
        assert self._exit_future is not None
        self._exit_future.set_result(exit_code)
        self._on_exit(exit_code)

    # -- flow control (only a borrowed terminal is read here)

    def pause_reading(self) -> None:
        if self._io is not None:
            self._io.pause_reading()

    def resume_reading(self) -> None:
        if self._io is not None:
            self._io.resume_reading()

    # -- to the host

    def write(self, data: bytes) -> None:
        if self._io is not None:
            self._io.write(data)  # InvalidInput when the agent is not reading its input
        elif self.exit_code is None:
            # A lost host is reported to the session through host_lost().
            with contextlib.suppress(HostLost):
                self.client.send_input(self.key, data)

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        if self._io is not None:
            # Here, before anything typed after it reaches the agent: input goes
            # straight to the PTY, and the host's resize would come later.
            self._io.set_size(rows, cols)
        self.client.notify("resize", key=self.key, rows=rows, cols=cols)

    def send_signal(self, sig: int) -> None:
        name = SIGNAL_NAMES.get(sig)
        if name is not None:
            self.client.notify("signal", key=self.key, signal=name)

    def set_clients(self, count: int) -> None:
        self.client.notify("clients", key=self.key, count=count)

    async def wait(self) -> int:
        assert self._exit_future is not None, "not started"
        return await asyncio.shield(self._exit_future)

    async def terminate(self, grace: float = 3.0, reason: str = "stopped") -> int:
        if self._exit_future is None:
            return 0
        if self.exit_code is None:
            # Gone already: the exit (or the host's loss) is reported to wait().
            with contextlib.suppress(HostError):
                await self.client.request("stop", key=self.key, reason=reason)
        return await self.wait()

    def detach(self) -> None:
        if self._io is not None:
            self._let_go(drain=False)
            self.client.notify("give_back", key=self.key)
        self.client.unregister(self.key, self)


def hosted_factory(client: HostClient) -> Callable[..., HostedProcess]:
    """A ``ProcessFactory`` starting sessions in the host ``client`` talks to."""

    def factory(key: str, argv: Sequence[str], **kwargs: Any) -> HostedProcess:
        return HostedProcess(client, key, argv, **kwargs)

    return factory
