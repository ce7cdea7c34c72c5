"""Running the app under uvicorn, with a clean start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from agentpty.api.app import create_app
from agentpty.api.connections import AcceptErrorLog, ConnectionLimits, guarded_http_protocol
from agentpty.config import Settings, WeakToken, load_or_create_token, mask_url
from agentpty.datadir import DataDirError, prepare_data_dir, raise_open_files_limit, secure_files
from agentpty.domain.errors import AgentptyError
from agentpty.eventloop import event_loop_factory
from agentpty.host.client import prepare_run_dir
from agentpty.secrets_guard import protect_process
from agentpty.service.container import Services

__all__ = ["QuietServer", "RedactSecrets", "lock_data_dir", "loop_factory", "run"]

log = logging.getLogger(__name__)
_SECRET_PARAMS = re.compile(r"((?:token|key)=)[^&\s\"']+")


class RedactSecrets(logging.Filter):
    """Hide ``token=`` and ``key=`` query values in uvicorn's access and error lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Keep the args' shape: uvicorn's access formatter unpacks them.
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAMS.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_PARAMS.sub(r"\1***", record.msg)
        return True


#: Connections the kernel queues for accept(). The event loop accepts up to
#: this many in one go before any is counted against the cap, so it bounds
#: how far past the cap descriptors can briefly go.
_BACKLOG = 128
#: Descriptors kept free of connections: one accept burst, the database,
#: agents' PTYs, log files.
_RESERVED_FDS = _BACKLOG + 256


def _connection_cap(wanted: int) -> int:
    """``wanted``, lowered if the open files limit cannot hold it (never to EMFILE)."""
    available = raise_open_files_limit(wanted + _RESERVED_FDS)
    cap = min(wanted, max(8, available - _RESERVED_FDS))
    if cap < wanted:
        log.warning(
            "open files limit %d holds only %d connections (AGENTPTY_MAX_CONNECTIONS=%d); "
            "raise 'ulimit -n' for more",
            available,
            cap,
            wanted,
        )
    return cap


class QuietServer(uvicorn.Server):
    """uvicorn's server with a housekeeping tick once a second instead of ten times.

    uvicorn wakes its main loop every 0.1 s to refresh the Date header (once
    a second) and to notice ``should_exit``; with every session idle those
    wake-ups were most of the server's CPU. Here the loop sleeps a second at
    a time, and an exit signal wakes it at once.
    """

    _wakeup: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        counter = 0
        # on_tick refreshes the Date header when counter % 10 == 0: every tick here.
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wakeup.wait()


class _Server(QuietServer):
    """uvicorn's server, announcing its URL once start-up is complete.

    The line comes after uvicorn's own start-up lines, so it is the last thing
    a terminal shows, and it is only printed when requests will be answered.
    Told to exit, it ends the event streams at once (h12: ``GET /api/events``):
    uvicorn waits for open responses before the app's shutdown runs, and an
    event stream never ends by itself.
    """

    announcement = ""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler: hand over to the loop instead of touching its queues here.
        loop = self._loop if self._loop is not None else asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._on_exit)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            print(self.announcement, flush=True)


def loop_factory(overrides: dict[str, Any]) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to serve on (``event_loop`` setting): uvloop if installed, unless
    asyncio's own is asked for. None means asyncio's default (also for bad settings,
    which ``run`` reports)."""
    try:
        choice = Settings(**overrides).event_loop
    except ValidationError:
        return None
    return event_loop_factory(choice)


def lock_data_dir(run_dir: Path) -> int | None:
    """Hold ``run/server.lock`` while serving (one server per data dir); None if taken.

    Two servers on one data dir would both adopt the host's sessions and
    both start agents for one conversation.
    """
    fd = os.open(prepare_run_dir(run_dir) / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def run(overrides: dict[str, Any], log_level: str = "info") -> int:
    """Serve until SIGINT/SIGTERM; return the process exit code."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"agentpty: invalid settings: {exc}", file=sys.stderr)
        return 2
    # Same-user processes (agents included) cannot read our environment
    # (the token may be there) or memory through /proc.
    protect_process()
    try:
        prepare_data_dir(settings.data_dir)
        token = load_or_create_token(settings)
    except (DataDirError, WeakToken) as exc:
        print(f"agentpty: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, WeakToken) else 1
    except OSError as exc:
        print(f"agentpty: token file in {settings.data_dir}: {exc.strerror}", file=sys.stderr)
        return 1
    if lock_data_dir(settings.run_dir) is None:
        print(
            f"agentpty: another agentpty server is using the data dir {settings.data_dir}; "
            "stop it first, or give this one another --data-dir",
            file=sys.stderr,
        )
        return 1
    try:
        services = Services.build(settings)
    except OSError as exc:
        print(f"agentpty: cannot write to {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        await services.open()
    except AgentptyError as exc:
        print(
            f"agentpty: cannot open the database {mask_url(settings.database_url)}: {exc.message}",
            file=sys.stderr,
        )
        return 1
    secure_files(settings.data_dir)
    # The lifespan opens again (idempotent) and closes on shutdown.
    app = create_app(services, token)
    limits = ConnectionLimits(settings.header_timeout, _connection_cap(settings.max_connections))
    asyncio.get_running_loop().set_exception_handler(AcceptErrorLog())
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        http=guarded_http_protocol(limits),
        backlog=_BACKLOG,
        timeout_keep_alive=5,
        # The sans-I/O protocol waits for the transport to drain below its
        # high-water mark before each send: a stalled client holds one frame.
        ws="websockets-sansio",
        ws_max_size=1024 * 1024,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_per_message_deflate=settings.compress_websockets,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, services.bus.close)
    # uvicorn configures its loggers when the config loads; filter after that.
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactSecrets())
    # Bind first, so the real port (AGENTPTY_PORT=0 picks one) is known before serving.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        # Listening now lets clients connect (and queue) as soon as the URL is printed.
        sock.listen(config.backlog)
    except OSError as exc:
        print(
            f"agentpty: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        await services.close()
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    base_url = f"http://{shown}:{port}"
    services.set_server_url(base_url, token)
    server.announcement = f"agentpty serving on {base_url}/?token={token}"
    await server.serve(sockets=[sock])
    return 0
