"""The host daemon's core: sessions by key, and the connections (servers, ``stop --all``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
from typing import Any, cast

from agentpty.host.codec import Decoder, Kind, ProtocolError, encode_control, encode_data
from agentpty.host.containment import Cgroups
from agentpty.host.session import HostSession
from agentpty.host.zygote import Zygote

__all__ = ["Connection", "Host", "descends_from", "peer_pid"]

log = logging.getLogger(__name__)

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


def peer_pid(transport: asyncio.BaseTransport) -> int | None:
    """The pid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return int(pid) or None


def descends_from(pid: int, ancestor: int) -> bool:
    """True if ``ancestor`` is among the parents of ``pid`` (or is ``pid``)."""
    seen = set()
    while pid > 1 and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            return False
        pid = int(stat[stat.rfind(b")") + 2 :].split()[1])
    return False


class Connection(asyncio.Protocol):
    """One client of the host; receives output of the sessions it attached."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.decoder = Decoder()
        self.transport: asyncio.Transport | None = None
        self.peer: int | None = None
        self.attached: set[str] = set()
        #: Sessions whose terminal this client borrowed (it reads their PTY itself).
        self.borrowed: set[str] = set()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.peer = peer_pid(transport)
        if peer is not None and descends_from(peer, os.getpid()):
            # An agent (or anything it started) must not drive other sessions.
            log.warning("refused a connection from pid %s, a process of a session", peer)
            self.transport.abort()
            return
        self.host.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            log.warning("closing a connection that sent a bad frame: %s", exc)
            assert self.transport is not None
            self.transport.close()
            return
        for kind, message in messages:
            self.host.handle(self, kind, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.disconnected(self)

    def pause_writing(self) -> None:
        # A slow client holds back the agents it watches (bounded memory here).
        self.paused = True
        self.host.update_reading(self)

    def resume_writing(self) -> None:
        self.paused = False
        self.host.update_reading(self)

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def send_fds(self, frame: bytes, fds: list[int]) -> None:
        """Write ``frame`` with ``fds`` attached; only as the connection's first write."""
        assert self.transport is not None
        raw = self.transport.get_extra_info("socket")
        # A dup of the transport's socket (same file, so still non-blocking):
        # nothing is queued before this first write, and a small frame fits.
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            socket.send_fds(sock, [frame], fds)

    def reply(self, request_id: Any, **fields: Any) -> None:
        self.send(encode_control(Kind.REPLY, {"id": request_id, "ok": True, **fields}))

    def error(self, request_id: Any, message: str) -> None:
        self.send(encode_control(Kind.REPLY, {"id": request_id, "error": message}))


class Host:
    """Every session of one data dir. Exits (``done``) when it has none and no client."""

    def __init__(self, ring_size: int, zygote: Zygote, *, cgroups: bool = True) -> None:
        self.ring_size = ring_size
        self.zygote = zygote
        self.sessions: dict[str, HostSession] = {}
        self.connections: set[Connection] = set()
        self.cgroups = Cgroups.create() if cgroups else None
        log.info(
            "host %d: containment %s",
            os.getpid(),
            f"cgroup v2 ({self.cgroups.base})" if self.cgroups else "process-tree",
        )
        self.done = asyncio.get_running_loop().create_future()
        self._starts = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- events from sessions

    def _output(self, session: HostSession, data: bytes) -> None:
        frame = encode_data(Kind.OUTPUT, session.key, data)
        for connection in self.connections:
            if session.key in connection.attached:
                connection.send(frame)

    def _ended(self, session: HostSession) -> None:
        """The agent exited: tell the clients following it (the rest is being stopped)."""
        if session.start_error is not None:
            return
        event = {
            "event": "exited",
            "key": session.key,
            "exit_code": session.exit_code,
            "reason": session.reason,
        }
        for connection in self.connections:
            if session.key in connection.attached:
                connection.send(encode_control(Kind.EVENT, event))

    def _gone(self, session: HostSession) -> None:
        """No process of the session is left; forget it if nobody needs its exit any more."""
        if self.sessions.get(session.key) is not session:
            session.discard()  # a later start of the key took its place
        elif session.start_error is not None or session.acked:
            del self.sessions[session.key]
            session.discard()
        self._maybe_done()

    def update_reading(self, connection: Connection) -> None:
        for key in connection.attached:
            session = self.sessions.get(key)
            if session is not None:
                session.paused = any(c.paused for c in self.connections if key in c.attached)
                if session.paused:
                    session.pause_reading()
                else:
                    session.resume_reading()

    def disconnected(self, connection: Connection) -> None:
        self.connections.discard(connection)
        for key in connection.borrowed:
            session = self.sessions.get(key)
            if session is not None:
                session.take_back()
        connection.borrowed.clear()
        for key in connection.attached:
            session = self.sessions.get(key)
            if session is not None:
                # Its clients (browsers of that server) are gone with it.
                session.set_clients(0)
        connection.attached.clear()
        self.update_reading(connection)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if not self.sessions and not self.connections:
            self.finish()

    def finish(self) -> None:
        """End the host (its owner then kills every session's tree)."""
        if not self.done.done():
            self.done.set_result(None)

    def kill_all(self) -> None:
        for session in self.sessions.values():
            session.kill_now()

    # -- requests

    def handle(self, connection: Connection, kind: Kind, message: Any) -> None:
        if kind is Kind.INPUT:
            key, data = message
            session = self.sessions.get(key)
            if session is not None:
                session.write(data)
            return
        if kind is not Kind.REQUEST:
            log.warning("ignoring an unexpected %s frame", kind.name)
            return
        request_id = message.get("id")
        op = message.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            connection.error(request_id, f"unknown operation {op!r}")
            return
        try:
            handler(connection, request_id, message)
        except (KeyError, TypeError, ValueError) as exc:
            connection.error(request_id, f"bad {op} request: {exc!r}")
        except Exception as exc:
            # A bug here must not close the connection (the loop would, and the
            # server would take every session for lost): say it, and go on.
            log.exception("the %s request failed", op)
            connection.error(request_id, f"{op} failed in the session host: {exc!r}")

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _session(self, connection: Connection, request_id: Any, key: str) -> HostSession | None:
        session = self.sessions.get(key)
        if session is None:
            connection.error(request_id, f"no session {key!r} in this host")
        return session

    def op_hello(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        connection.reply(
            request_id, pid=os.getpid(), containment="cgroup" if self.cgroups else "process-tree"
        )

    def op_list(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        infos = [s.info() for s in self.sessions.values() if s.start_error is None and not s.acked]
        connection.reply(request_id, sessions=infos)

    def op_spawn(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        key = str(message["key"])
        old = self.sessions.get(key)
        if old is not None and old.state in ("starting", "running"):
            connection.error(request_id, f"session {key!r} is already running in this host")
            return
        if old is not None and old.state == "exited":
            old.discard()  # an exit nobody acknowledged; one still exiting is freed when gone
        # A cgroup per start: what an earlier start of the key left may still be stopping.
        self._starts += 1
        cgroup = self.cgroups.session_dir(f"{key}-{self._starts}") if self.cgroups else None
        session = HostSession(
            key,
            message,
            zygote=self.zygote,
            cgroup=cgroup,
            ring_size=int(message.get("ring_size") or self.ring_size),
            on_output=self._output,
            on_ended=self._ended,
            on_exit=self._gone,
        )
        try:
            session.spawn()
        except OSError as exc:
            connection.error(request_id, f"cannot start {session.argv[0]!r}: {exc.strerror}")
            return
        self.sessions[key] = session
        connection.attached.add(key)

        async def started() -> None:
            await session.started
            if session.start_error is not None:
                connection.error(request_id, session.start_error)
            else:
                connection.reply(request_id, **session.info())

        self._spawn_task(started())

    def op_attach(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        session = self._session(connection, request_id, str(message["key"]))
        if session is None:
            return
        connection.attached.add(session.key)
        # The ring, then live output: one loop, so nothing is lost or doubled.
        connection.send(encode_data(Kind.RING, session.key, session.ring.contents()))
        connection.reply(request_id, **session.info())
        if session.state in ("exiting", "exited"):
            self._ended(session)

    def op_resize(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        session = self.sessions.get(str(message["key"]))
        if session is not None:
            session.resize(int(message["rows"]), int(message["cols"]))

    def op_signal(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        session = self.sessions.get(str(message["key"]))
        sig = SIGNALS.get(str(message["signal"]))
        if session is not None and sig is not None:
            session.send_signal(sig)

    def op_clients(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        session = self.sessions.get(str(message["key"]))
        if session is not None:
            session.set_clients(int(message["count"]))

    def op_stop(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        session = self._session(connection, request_id, str(message["key"]))
        if session is None:
            return
        session.stop(str(message.get("reason") or "stopped"))

        async def stopped() -> None:
            code = await session.exited
            connection.reply(request_id, exit_code=code)

        self._spawn_task(stopped())

    def op_stop_all(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        reason = str(message.get("reason") or "stop all")
        running = [s for s in self.sessions.values() if s.state != "exited"]
        for session in running:
            session.stop(reason)

        async def stopped() -> None:
            codes = await asyncio.gather(*(s.exited for s in running))
            connection.reply(
                request_id,
                stopped={s.key: code for s, code in zip(running, codes, strict=True)},
            )

        self._spawn_task(stopped())

    def op_ack(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        """The client recorded the session's exit: the host forgets it."""
        key = str(message["key"])
        session = self.sessions.get(key)
        connection.attached.discard(key)
        if key in connection.borrowed:
            connection.borrowed.discard(key)
            if session is not None:
                session.take_back()
        if session is not None and session.state == "exited":
            del self.sessions[key]
            session.discard()
        elif session is not None and session.state == "exiting":
            session.acked = True  # forgotten once its last process is gone
        self._maybe_done()

    # -- lending a session's terminal to the server that follows it

    def op_lend(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        """Stop reading the session's PTY: the client reads it (fds fetched with ``fds``).

        The reply follows every output frame the host sent before it, so the
        client knows where its own reads begin.
        """
        session = self._session(connection, request_id, str(message["key"]))
        if session is None:
            return
        if session.state != "running" or session.master < 0:
            connection.error(request_id, f"session {session.key!r} is not running")
            return
        for other in self.connections:
            if other is not connection and session.key in other.borrowed:
                connection.error(request_id, f"session {session.key!r} is lent to another client")
                return
        session.lend()
        connection.borrowed.add(session.key)
        connection.reply(request_id, ring_head=session.ring.head)

    def op_give_back(
        self, connection: Connection, request_id: Any, message: dict[str, Any]
    ) -> None:
        key = str(message["key"])
        if key in connection.borrowed:
            connection.borrowed.discard(key)
            session = self.sessions.get(key)
            if session is not None:
                session.take_back()

    def op_fds(self, connection: Connection, request_id: Any, message: dict[str, Any]) -> None:
        """Send the PTY master and the ring of a session lent to this client's process.

        Asked on a connection of its own (the fds travel as ``SCM_RIGHTS`` with
        the reply, which must be the connection's first write); the process
        must be the one that borrowed the session on its main connection.
        """
        key = str(message["key"])
        session = self.sessions.get(key)
        peer = connection.peer
        borrower = next((c for c in self.connections if key in c.borrowed), None)
        if (
            session is None
            or session.master < 0
            or borrower is None
            or peer is None
            or borrower.peer != peer
        ):
            connection.error(request_id, f"session {key!r} is not lent to this process")
            return
        connection.send_fds(
            encode_control(Kind.REPLY, {"id": request_id, "ok": True}),
            [session.master, session.ring.fd],
        )
