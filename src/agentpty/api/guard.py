"""The request guard: an ASGI middleware that refuses hostile requests before any body is read.

In order, for every HTTP request and WebSocket handshake:

1. ``Host`` must be one this server answers to (DNS rebinding, ``auth.host_allowed``).
2. An address that failed authentication too often gets 429 (``FailureThrottle``).
3. ``/api/**`` needs the token (hooks: their per-project key) — checked on the
   headers, so a body from a client without credentials is never read.
4. A state-changing request authenticated by the cookie needs an allowed
   ``Origin`` (CSRF; Bearer and ``?token=`` requests are not sent by browsers
   on their own).
5. A body over ``max_body_bytes`` gets 413: at once if ``Content-Length``
   says so, else as soon as the bytes read so far pass the limit.

A refused request whose body may be large (over the limit, or of unknown
length) has its connection closed, so the body is never drained; a small
one is discarded by uvicorn as it arrives (never buffered), so the client
reads the answer instead of a reset connection.
WebSocket handshakes get checks 1 and 2 here; the endpoint checks the token
and origin and reports failures to the throttle, because it answers with
close codes the terminal client understands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentpty.api.auth import UNAUTHORIZED, host_allowed, origin_allowed, token_source, token_valid
from agentpty.api.throttle import FailureThrottle
from agentpty.service.hooks import KEY_HEADER, PROJECT_HEADER

__all__ = ["BodyTooLarge", "RequestGuard", "client_address"]

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOOKS = "/api/hooks/"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; renders as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body over {limit} bytes; send less, or raise "
            "AGENTPTY_MAX_BODY_BYTES on the server",
        )


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestGuard:
    """See the module docstring. ``hook_key_valid(project_id, key)`` checks hook keys."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bound_host: str,
        allowed_hosts: frozenset[str],
        max_body_bytes: int,
        throttle: FailureThrottle,
        hook_key_valid: Callable[[str, str], bool],
    ) -> None:
        self.app = app
        self.bound_host = bound_host
        self.allowed_hosts = allowed_hosts
        self.max_body_bytes = max_body_bytes
        self.throttle = throttle
        self.hook_key_valid = hook_key_valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        refusal = self._refusal(conn)
        if refusal is not None:
            status, detail, headers = refusal
            close = self._body_may_be_large(conn)
            await _refuse(scope, send, status, detail, headers, close=close)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._with_body_limit(scope, receive, send)

    def _body_may_be_large(self, conn: HTTPConnection) -> bool:
        declared = conn.headers.get("content-length")
        if declared is None:
            return "transfer-encoding" in conn.headers
        return not declared.strip().isdigit() or int(declared) > self.max_body_bytes

    def _refusal(self, conn: HTTPConnection) -> tuple[int, str, dict[str, str]] | None:
        """(status, detail, headers) if the request must be refused on its headers."""
        if not host_allowed(conn.headers.get("host"), self.bound_host, self.allowed_hosts):
            return (
                400,
                f"Host {conn.headers.get('host')!r} is not one this server answers to: use "
                "its address or localhost, or add the name to AGENTPTY_ALLOWED_HOSTS",
                {},
            )
        path: str = conn.scope["path"]
        needs_auth = path.startswith("/api/") or (path == "/" and "token" in conn.query_params)
        if not needs_auth:
            return None
        address = client_address(conn.scope)
        wait = self.throttle.retry_after(address)
        if wait > 0:
            return (
                429,
                f"too many failed authentications from {address}; retry in {wait:.1f} s",
                {"Retry-After": str(math.ceil(wait))},
            )
        if conn.scope["type"] == "websocket" or path == "/":
            return None  # the endpoint checks and reports failures
        if path == _HOOKS.rstrip("/"):
            # posted by the agent itself: project and key in headers (HookEndpoint)
            project_id = conn.headers.get(PROJECT_HEADER, "")
            if not self.hook_key_valid(project_id, conn.headers.get(KEY_HEADER, "")):
                self.throttle.failed(address)
                return (
                    401,
                    f"wrong or missing hook key: send the {PROJECT_HEADER} and {KEY_HEADER} "
                    "headers agentpty gave the agent",
                    {},
                )
            return None
        if path.startswith(_HOOKS):
            # /api/hooks/{project_id}, or the deprecated /api/hooks/claude/{project_id}
            project_id = path.removeprefix(_HOOKS).removeprefix("claude/").partition("/")[0]
            if not self.hook_key_valid(project_id, conn.query_params.get("key", "")):
                self.throttle.failed(address)
                return 401, "wrong hook key for this project", {}
            return None
        if not token_valid(conn):
            self.throttle.failed(address)
            return 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"}
        found = token_source(conn)
        if (
            conn.scope["method"] in _STATE_CHANGING
            and found is not None
            and found[1] == "cookie"
            and not origin_allowed(conn, required=True)
        ):
            return (
                403,
                f"cross-site request refused: Origin {conn.headers.get('origin')!r} is not this "
                "server's; use the agentpty page, send 'Authorization: Bearer <token>', or "
                "add the origin to AGENTPTY_ALLOWED_ORIGINS",
                {},
            )
        return None

    async def _with_body_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        declared = HTTPConnection(scope).headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _refuse(
                    scope, send, 400, f"Content-Length {declared!r} is not a number", close=True
                )
                return
            if int(declared) > limit:
                # An authenticated client: the rest is discarded as it arrives.
                await _refuse(scope, send, 413, BodyTooLarge(limit).detail)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Raised where no exception handler rendered it (outside a route).
            if started:
                raise
            await _refuse(scope, send, 413, exc.detail)


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> None:
    """A JSON error response; ``close``: and close the connection (its body is not drained)."""
    if scope["type"] == "websocket":
        # Before accept: uvicorn answers the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode()
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        raw.append((b"connection", b"close"))
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    message: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(message)
    await send({"type": "http.response.body", "body": body})
