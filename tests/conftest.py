from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentpty.host.client import kill_host
from tests.helpers import SCALE, RunningServer, make_settings, serve

#: Markers of tests that each take seconds (a real CLI or browser starts).
SLOW_MARKERS = ("schemathesis", "gemini", "claude", "codex", "browser")


def slowness(item: pytest.Item) -> int:
    """Rank for the run order: lower runs first."""
    for rank, name in enumerate(SLOW_MARKERS):
        if item.get_closest_marker(name) is not None:
            return rank
    return len(SLOW_MARKERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, and per-test timeouts that follow AGENTPTY_TEST_TIMEOUT_SCALE.

    With pytest-xdist handing out two tests at a time (``make test``), the
    long ones starting first keep the workers evenly busy to the end instead
    of one worker finishing a Gemini test while the others are idle.
    """
    items.sort(key=slowness)
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


@pytest.fixture(autouse=True)
def no_session_host_left(tmp_path: Path) -> Iterator[None]:
    """Ends any session host a test's server processes started under its folder.

    Hosts outlive servers on purpose (agents survive a restart), so a test
    that kills or stops its ``agentpty serve`` would otherwise leave the host
    and its agents running after the suite.
    """
    yield
    for run_dir in tmp_path.glob("**/run"):
        if (run_dir / "host.lock").exists():
            kill_host(run_dir)
