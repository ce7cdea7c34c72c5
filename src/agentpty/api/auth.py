"""Token and origin checks for every request but ``/healthz``."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

__all__ = ["COOKIE", "origin_allowed", "request_token", "require_token", "token_valid"]

COOKIE = "agentpty_token"


def request_token(conn: HTTPConnection) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, cookie, or ``?token=``."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return conn.cookies.get(COOKIE) or conn.query_params.get("token")


def token_valid(conn: HTTPConnection) -> bool:
    expected: str = conn.app.state.token
    given = request_token(conn)
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


async def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token."""
    if not token_valid(request):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send 'Authorization: Bearer <token>', the "
            "agentpty_token cookie or ?token=<token> (printed by 'agentpty serve')",
            headers={"WWW-Authenticate": "Bearer"},
        )


def origin_allowed(conn: HTTPConnection) -> bool:
    """A browser's ``Origin`` must name this server's own host (or an allowed one)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True  # not a browser: the token is the guard
    netloc = urlsplit(origin).netloc.lower()
    host = conn.headers.get("host", "").lower()
    allowed: frozenset[str] = conn.app.state.allowed_origins
    return bool(netloc) and (netloc == host or netloc in allowed)
