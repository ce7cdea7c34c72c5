"""Connection admission: a header read timeout, a connection cap, quiet accept errors.

uvicorn has ``timeout_keep_alive`` (idle between requests) and
``limit_concurrency`` (503 once too many are open), but nothing bounds how
long a client may take to send a request's headers: a client that sends
one header line every few seconds (slowloris) holds its connection, and
file descriptor, forever. ``guarded_http_protocol`` returns a subclass of
uvicorn's httptools protocol, handed to ``uvicorn.Config(http=...)``, that

- closes a connection with 408 if a request's headers are not complete
  ``header_timeout`` seconds after it began (or after the connection opened);
- keeps at most ``max_connections`` open: at the cap, the oldest connection
  still sending its headers is closed to make room (an attacker's, almost
  always: a real client sends its headers in one packet), else the new
  one is refused with 503. An authenticated client is thus answered while
  slow connections pile up.

The subclass only adds a timer and bookkeeping around uvicorn's own parser
callbacks; parsing and the ASGI cycle stay uvicorn's. ``AcceptErrorLog`` is
the event loop's exception handler: out of file descriptors, the loop
reports every failed ``accept()``; it logs them at most once a second with
a count.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["AcceptErrorLog", "ConnectionLimits", "guarded_http_protocol"]

log = logging.getLogger(__name__)

_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _response(status: str, detail: str) -> bytes:
    body = ('{"detail":"' + detail + '"}').encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


_TIMEOUT_RESPONSE = _response(
    "408 Request Timeout", "request headers not received in time; send them at once"
)
_FULL_RESPONSE = _response(
    "503 Service Unavailable", "too many open connections; retry in a moment"
)


class ConnectionLimits:
    """Shared by every connection of one server: the limits and who is still sending headers."""

    def __init__(self, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        #: Connections waiting for a request's headers, oldest first (dicts keep order).
        self.awaiting_headers: dict[GuardedHttpToolsProtocol, None] = {}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a connection cap."""

    limits: ConnectionLimits  # set on the subclass ``guarded_http_protocol`` makes

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            transport.write(_FULL_RESPONSE)
            transport.close()
            return
        self._await_headers()

    def _make_room(self) -> bool:
        """Close the oldest connection still sending headers; False if there is none."""
        for oldest in self.limits.awaiting_headers:
            oldest._drop("connection cap reached; closed the oldest slow connection")
            return True
        return False

    def _await_headers(self) -> None:
        if self._header_timer is None:
            self.limits.awaiting_headers[self] = None
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._drop, "request headers not received in time"
            )

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.limits.awaiting_headers.pop(self, None)

    def _drop(self, reason: str) -> None:
        self._headers_done()
        if not self.transport.is_closing():
            log.debug("%s: %s", self.client, reason)
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()  # a keep-alive connection's next request

    def on_headers_complete(self) -> None:
        self._headers_done()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_done()
        super().connection_lost(exc)


def guarded_http_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` bound to ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


class AcceptErrorLog:
    """Event-loop exception handler: resource errors at most once per ``interval`` seconds.

    Everything else goes to the loop's default handler unchanged.
    """

    def __init__(
        self, interval: float = 1.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._last = -interval
        self._suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRORS):
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        log.error(
            "cannot accept connections: %s (%d more like it in the last %.0f s); "
            "raise 'ulimit -n' or lower AGENTPTY_MAX_CONNECTIONS",
            exc.strerror,
            self._suppressed,
            now - self._last if self._suppressed else self.interval,
        )
        self._last = now
        self._suppressed = 0
