from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import RunningServer, make_settings, serve


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A real agentpty server on loopback, shell agent by default, fresh data dir."""
    async with serve(make_settings(tmp_path / "data")) as running:
        yield running
