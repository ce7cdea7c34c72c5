from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentpty.terminal.session import TerminalSession


@pytest.fixture(autouse=True)
async def stop_started_sessions(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Every TerminalSession a test starts is stopped after it, even if the test failed.

    ``start`` and ``launch`` are wrapped, not replaced: the real ones run; the
    wrappers only remember the session, so that a timed-out test leaves no
    shell behind.
    """
    started: list[TerminalSession] = []
    real_start = TerminalSession.start
    real_launch = TerminalSession.launch

    def start(self: TerminalSession, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return real_start(self, *args, **kwargs)

    async def launch(self: TerminalSession, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return await real_launch(self, *args, **kwargs)

    monkeypatch.setattr(TerminalSession, "start", start)
    monkeypatch.setattr(TerminalSession, "launch", launch)
    yield
    for session in started:
        if session.alive:
            await session.stop()
