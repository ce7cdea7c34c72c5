"""Token, origin and host checks: who may talk to the server, and from which page."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Literal
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

__all__ = [
    "COOKIE",
    "UNAUTHORIZED",
    "host_allowed",
    "origin_allowed",
    "request_token",
    "require_token",
    "token_source",
    "token_valid",
]

COOKIE = "agentpty_token"
UNAUTHORIZED = (
    "missing or wrong token: send 'Authorization: Bearer <token>', the "
    "agentpty_token cookie or ?token=<token> (printed by 'agentpty serve')"
)
TokenSource = Literal["bearer", "cookie", "query"]


def token_source(conn: HTTPConnection) -> tuple[str, TokenSource] | None:
    """The token a request carries and where: ``Authorization: Bearer``, cookie, ``?token=``."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "bearer"
    if cookie := conn.cookies.get(COOKIE):
        return cookie, "cookie"
    if query := conn.query_params.get("token"):
        return query, "query"
    return None


def request_token(conn: HTTPConnection) -> str | None:
    """The token a request carries, wherever it is."""
    found = token_source(conn)
    return None if found is None else found[0]


def token_valid(conn: HTTPConnection) -> bool:
    expected: str = conn.app.state.token
    given = request_token(conn)
    return given is not None and secrets.compare_digest(
        given.encode(errors="surrogateescape"), expected.encode()
    )


async def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token.

    The guard middleware already refused such requests before their body was
    read; this keeps the contract visible in the OpenAPI schema and holds if
    a route is ever served without the middleware.
    """
    if not token_valid(request):
        raise HTTPException(
            status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
        )


def origin_allowed(conn: HTTPConnection, *, required: bool = False) -> bool:
    """A browser's ``Origin`` must name this server's own host (or an allowed one).

    Without ``required`` a missing Origin passes (not a browser: the token is
    the guard); with it, a missing Origin fails.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return not required
    netloc = urlsplit(origin).netloc.lower()
    host = conn.headers.get("host", "").lower()
    allowed: frozenset[str] = conn.app.state.allowed_origins
    return bool(netloc) and (netloc == host or netloc in allowed)


def _host_name(host: str) -> str:
    """The name or address in a ``Host`` header, without port, brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(host: str | None, bound: str, allowed: frozenset[str]) -> bool:
    """True if a request naming ``host`` cannot be a DNS-rebinding attack.

    Rebinding needs a name the attacker's DNS controls, so allowed are:
    loopback names (``localhost``, ``*.localhost``, which browsers resolve
    themselves), names in ``allowed``, the bound host, and IP addresses that
    are loopback or the bound one (any, when bound to every interface). A
    request without ``Host`` is not from a browser and passes.
    """
    if host is None:
        return True
    name = _host_name(host)
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost") or name in allowed:
        return True
    bound = _host_name(bound)
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == bound
    if address.is_loopback or bound in ("", "0.0.0.0", "::"):
        return True
    try:
        return address == ipaddress.ip_address(bound)
    except ValueError:
        return False
