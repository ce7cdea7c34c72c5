"""Running the app under uvicorn, with a clean start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from agentpty.api.app import create_app
from agentpty.config import Settings, load_or_create_token, mask_url
from agentpty.domain.errors import AgentptyError
from agentpty.service.container import Services

__all__ = ["RedactSecrets", "run"]

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


class _Server(uvicorn.Server):
    """uvicorn, ending the event streams (h12: GET /api/events) as soon as it is told to exit.

    uvicorn waits for open responses before the app's shutdown runs; an
    event stream never ends by itself.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler: hand over to the loop instead of touching its queues here.
        asyncio.get_event_loop().call_soon_threadsafe(self._on_exit)


async def run(overrides: dict[str, Any], log_level: str = "info") -> int:
    """Serve until SIGINT/SIGTERM; return the process exit code."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"agentpty: invalid settings: {exc}", file=sys.stderr)
        return 2
    token = load_or_create_token(settings)
    try:
        services = Services.build(settings)
        await services.open()
    except AgentptyError as exc:
        print(
            f"agentpty: cannot open the database {mask_url(settings.database_url)}: {exc.message}",
            file=sys.stderr,
        )
        return 1
    # The lifespan opens again (idempotent) and closes on shutdown.
    app = create_app(services, token)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        ws_max_size=1024 * 1024,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_per_message_deflate=settings.ws_compression,
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
    services.sessions.set_server_url(base_url, token)
    print(f"agentpty serving on {base_url}/?token={token}", flush=True)
    await server.serve(sockets=[sock])
    return 0
