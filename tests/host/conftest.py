from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import stop_host


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    """A fresh data dir whose session host (if any starts) is stopped and killed afterwards."""
    path = tmp_path / "data"
    try:
        yield path
    finally:
        await stop_host(path / "run")
