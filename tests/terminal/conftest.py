from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentpty.terminal.session import TerminalSession


@pytest.fixture(autouse=True)
async def stop_started_sessions(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Every TerminalSession a test starts is stopped after it, even if the test failed.

    ``start`` is wrapped, not replaced: the real one runs; the wrapper only
    remembers the session, so that a timed-out test leaves no shell behind.
    """
    started: list[TerminalSession] = []
    real_start = TerminalSession.start

    def start(self: TerminalSession, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(TerminalSession, "start", start)
    yield
    for session in started:
        if session.alive:
            await session.stop()
