"""The server's side of the host protocol: connect (starting the host if asked), requests,
and the per-session handlers that receive output and exits. Also ``stop_all`` for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Protocol, cast

from agentpty.host.codec import Decoder, Kind, ProtocolError, encode_control, encode_data
from agentpty.host.ring import SharedRing

__all__ = [
    "HostClient",
    "HostError",
    "HostLost",
    "SessionHandler",
    "host_pid",
    "kill_host",
    "prepare_run_dir",
    "stop_all",
]

log = logging.getLogger(__name__)

#: What the host inherits from the server: enough to run Python, none of its secrets.
HOST_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "HOME", "TMPDIR")
START_TIMEOUT = 30.0
#: The host answers ``fds`` at once; this only bounds a host that does not.
FDS_TIMEOUT = 10.0


class HostError(Exception):
    """The host refused a request (the message says why)."""


class HostLost(HostError):
    """The connection to the host is gone (the host died or was never there)."""


class SessionHandler(Protocol):
    def host_output(self, data: bytes) -> None: ...
    def host_exited(self, exit_code: int, reason: str | None) -> None: ...
    def host_lost(self) -> None: ...


def prepare_run_dir(run_dir: Path) -> Path:
    """``<data dir>/run``, mode 0700 (it holds the host's socket and locks)."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    return run_dir


def _socket_path(run_dir: Path) -> tuple[str, int | None]:
    """A connectable path to ``host.sock``, short enough for ``sun_path`` (107 bytes)."""
    path = str(run_dir / "host.sock")
    if len(path) < 100:
        return path, None
    fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/host.sock", fd


class _Protocol(asyncio.Protocol):
    def __init__(self, client: HostClient) -> None:
        self.client = client
        self.decoder = Decoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            log.error("the session host sent a bad frame (%s): disconnecting", exc)
            assert self.transport is not None
            self.transport.close()
            return
        for kind, message in messages:
            self.client._dispatch(kind, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(self)


class HostClient:
    """One server's connection to the session host of its data dir."""

    def __init__(
        self,
        run_dir: Path,
        *,
        ring_size: int = 1024 * 1024,
        cgroups: bool = True,
        event_loop: str = "auto",
    ) -> None:
        self.run_dir = run_dir
        self.ring_size = ring_size
        #: Whether a host this client starts may use cgroups (a running host keeps its choice).
        self.cgroups = cgroups
        #: The event loop of a host this client starts: "asyncio", else uvloop if installed.
        self.event_loop = event_loop
        self.host_pid: int | None = None
        self.containment: str | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._handlers: dict[str, SessionHandler] = {}
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    async def connect(self, *, start: bool) -> bool:
        """Connect to the host; start one first if ``start`` and none runs. False if none."""
        if self._protocol is not None:
            return True
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None:
                return True
            if await self._open():
                return True
            if not start:
                return False
            await self._start_host()
            if not await self._open():
                raise HostError(f"the session host did not start; see {self.run_dir}/host.log")
            return True

    async def _open(self) -> bool:
        prepare_run_dir(self.run_dir)
        path, fd = _socket_path(self.run_dir)
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_unix_connection(lambda: _Protocol(self), path)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        finally:
            if fd is not None:
                os.close(fd)
        self._protocol = protocol
        self._closing = False
        try:
            hello = await self.request("hello")
        except HostLost:
            return False  # it was exiting (nothing left to run): start another if asked
        self.host_pid = int(hello["pid"])
        self.containment = str(hello["containment"])
        log.info("session host pid %s (containment: %s)", self.host_pid, self.containment)
        return True

    async def _start_host(self) -> None:
        """Exec a fresh ``python -m agentpty.host`` (not a fork: none of our memory or secrets)."""
        env = {name: os.environ[name] for name in HOST_ENV if name in os.environ}
        log_fd = os.open(self.run_dir / "host.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentpty.host",
                str(self.run_dir),
                str(self.ring_size),
                "cgroups" if self.cgroups else "no-cgroups",
                self.event_loop,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(log_fd)
        async with asyncio.timeout(START_TIMEOUT):
            code = await process.wait()
        if code != 0:
            raise HostError(f"the session host failed to start; see {self.run_dir}/host.log")

    # -- messages

    def _send(self, frame: bytes) -> None:
        if self._protocol is None or self._protocol.transport is None:
            raise HostLost("not connected to the session host")
        self._protocol.transport.write(frame)

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply; ``HostError`` if refused, ``HostLost``."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        try:
            self._send(encode_control(Kind.REQUEST, {"id": request_id, "op": op, **fields}))
            return await future
        finally:
            self._replies.pop(request_id, None)

    def notify(self, op: str, **fields: Any) -> None:
        """A request whose answer nobody waits for (resize, signal, client count, ack)."""
        with contextlib.suppress(HostLost):
            self._send(encode_control(Kind.REQUEST, {"id": None, "op": op, **fields}))

    async def borrow(self, key: str) -> tuple[int, SharedRing]:
        """Take over reading and writing the session's PTY: its master fd and its ring.

        The host stops reading before it answers, and every output frame it
        sent earlier has been handled when this returns: the caller's own reads
        continue the stream. ``give_back`` (or closing the connection) returns it.
        """
        await self.request("lend", key=key)
        try:
            master, ring_fd = await self._fetch_fds(key)
        except BaseException:
            self.notify("give_back", key=key)
            raise
        try:
            ring = SharedRing.open(ring_fd)
        except (OSError, ValueError):
            os.close(master)
            self.notify("give_back", key=key)
            raise
        return master, ring

    async def _fetch_fds(self, key: str) -> tuple[int, int]:
        """Ask for the fds on a connection of their own (the main one is a transport's).

        Bounded by ``FDS_TIMEOUT``: a host that does not answer leaves the
        terminal with the host (``HostLost``), it never holds up a start.
        """
        try:
            async with asyncio.timeout(FDS_TIMEOUT):
                return await self._ask_fds(key)
        except TimeoutError:
            raise HostLost(f"the session host did not send the terminal of {key!r}") from None

    async def _ask_fds(self, key: str) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        path, dir_fd = _socket_path(self.run_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fds: list[int] = []
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
            await loop.sock_sendall(
                sock, encode_control(Kind.REQUEST, {"id": 1, "op": "fds", "key": key})
            )
            decoder = Decoder()
            while True:
                readable = loop.create_future()
                loop.add_reader(sock.fileno(), _set_once, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(sock.fileno())
                try:
                    data, received, _, _ = socket.recv_fds(sock, 65536, 2, socket.MSG_CMSG_CLOEXEC)
                except BlockingIOError:
                    continue
                fds += received
                if not data:
                    raise HostLost("the session host closed the connection")
                for kind, message in decoder.feed(data):
                    if kind is not Kind.REPLY:
                        continue
                    if "error" in message:
                        raise HostError(str(message["error"]))
                    if len(fds) != 2:
                        raise HostError(f"the session host sent {len(fds)} fds, not 2")
                    master, ring_fd = fds
                    fds = []
                    return master, ring_fd
        finally:
            sock.close()
            if dir_fd is not None:
                os.close(dir_fd)
            for fd in fds:
                os.close(fd)

    def send_input(self, key: str, data: bytes) -> None:
        self._send(encode_data(Kind.INPUT, key, data))

    def register(self, key: str, handler: SessionHandler) -> None:
        self._handlers[key] = handler

    def unregister(self, key: str, handler: SessionHandler) -> None:
        if self._handlers.get(key) is handler:
            del self._handlers[key]

    def _dispatch(self, kind: Kind, message: Any) -> None:
        if kind in (Kind.OUTPUT, Kind.RING):
            key, data = message
            handler = self._handlers.get(key)
            if handler is not None and data:
                handler.host_output(data)
        elif kind is Kind.REPLY:
            future = self._replies.get(message.get("id"))
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(HostError(str(message["error"])))
                else:
                    future.set_result(message)
        elif kind is Kind.EVENT and message.get("event") == "exited":
            handler = self._handlers.get(str(message.get("key")))
            if handler is not None:
                handler.host_exited(int(message.get("exit_code") or 0), message.get("reason"))

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is not protocol:
            return
        self._protocol = None
        for future in self._replies.values():
            if not future.done():
                future.set_exception(HostLost("the session host closed the connection"))
        if self._closing or not self._handlers:
            return
        log.error("lost the session host (pid %s): its sessions are gone", self.host_pid)
        handlers = list(self._handlers.values())
        self._handlers.clear()
        for handler in handlers:
            handler.host_lost()

    def close(self) -> None:
        """Detach: the host and its sessions keep running."""
        self._closing = True
        self._handlers.clear()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()


def _set_once(future: asyncio.Future[None]) -> None:
    # A reader fires on every loop pass until removed: the waiter may not have run yet.
    if not future.done():
        future.set_result(None)


def host_pid(run_dir: Path) -> int | None:
    """The pid written in ``host.lock`` by the host holding it, if one does."""
    try:
        text = (run_dir / "host.lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None


async def stop_all(run_dir: Path, reason: str = "stop all") -> dict[str, int] | None:
    """Stop every session of the host of ``run_dir``; None when no host runs.

    Works with or without a server: the host keeps the exits for the next
    server to record.
    """
    client = HostClient(run_dir)
    try:
        if not await client.connect(start=False):
            return None
        reply = await client.request("stop_all", reason=reason)
    except HostLost:
        return None  # it exited meanwhile (a host with nothing left to run ends itself)
    finally:
        client.close()
    return {str(key): int(code) for key, code in reply["stopped"].items()}


def kill_host(run_dir: Path, wait: float = 5.0) -> None:
    """End the host: SIGTERM (it kills every session's tree), SIGKILL if still there after
    ``wait`` seconds (its keepers then kill their trees). For tests and emergencies.
    """
    pid = host_pid(run_dir)
    if pid is None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([pidfd], [], [], wait)[0]:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
