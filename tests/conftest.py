from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import SCALE, RunningServer, make_settings, serve


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The per-test timeout (pytest-timeout) grows with AGENTPTY_TEST_TIMEOUT_SCALE too."""
    if SCALE <= 1:
        return
    limit = float(config.getini("timeout") or 120) * SCALE
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A real agentpty server on loopback, shell agent by default, fresh data dir."""
    async with serve(make_settings(tmp_path / "data")) as running:
        yield running
