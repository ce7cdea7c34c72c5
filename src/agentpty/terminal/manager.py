"""Sessions keyed by an opaque string: at most one live session per key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agentpty.terminal.session import TerminalSession

__all__ = ["SessionManager"]

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[TerminalSession]]


class SessionManager:
    """Owns every live ``TerminalSession``.

    ``ensure`` starts a session only if none is alive for the key; concurrent
    callers for the same key wait on the one start in flight, so twenty
    simultaneous first attaches start exactly one process.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, TerminalSession] = {}
        self._starting: dict[str, asyncio.Future[TerminalSession]] = {}
        self._closing = False

    def get(self, key: str) -> TerminalSession | None:
        """The session last started for ``key`` (alive or exited), if any."""
        return self._sessions.get(key)

    def live(self, key: str) -> TerminalSession | None:
        session = self._sessions.get(key)
        return session if session is not None and session.alive else None

    def is_starting(self, key: str) -> bool:
        return key in self._starting

    def sessions(self) -> list[TerminalSession]:
        return list(self._sessions.values())

    async def ensure(self, key: str, factory: Factory) -> tuple[TerminalSession, bool]:
        """Return the live session for ``key``, starting one with ``factory`` if needed.

        The boolean is True for the one caller whose call started it. If the
        factory raises, every waiting caller gets the error and the next call
        tries again.
        """
        if self._closing:
            raise RuntimeError("the session manager is shutting down")
        live = self.live(key)
        if live is not None:
            return live, False
        pending = self._starting.get(key)
        if pending is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future[TerminalSession] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            session = await factory()
        except BaseException as exc:
            future.set_exception(exc)
            # Mark retrieved: the waiters (if any) re-raise it themselves.
            future.exception()
            raise
        else:
            self._sessions[key] = session
            future.set_result(session)
            return session, True
        finally:
            del self._starting[key]

    def adopt(self, key: str, session: TerminalSession) -> None:
        """Track ``session``, already running (adopted from the session host), under ``key``."""
        if self.live(key) is not None or key in self._starting:
            raise RuntimeError(f"a session for {key!r} is already live")
        self._sessions[key] = session

    async def stop(self, key: str, reason: str = "stopped") -> int | None:
        """Stop the live session for ``key``; return its exit code, None if none was live."""
        session = self.live(key)
        if session is None:
            return None
        return await session.stop(reason)

    async def shutdown(self, *, detach: bool = False) -> None:
        """Stop every session (escalating signals) and wait for them; idempotent.

        With ``detach``, sessions that survive the server (in the session
        host) are left running instead, as closing a tmux client leaves tmux's.
        """
        self._closing = True
        live = [session for session in self._sessions.values() if session.alive]
        if detach:
            for session in [s for s in live if s.survives_server]:
                session.detach()
            left = len(live)
            live = [session for session in live if not session.survives_server]
            if left > len(live):
                log.info("detaching from %d session(s): they keep running", left - len(live))
        if live:
            log.info("stopping %d session(s)", len(live))
        await asyncio.gather(
            *(session.stop("server shutdown") for session in live), return_exceptions=True
        )
