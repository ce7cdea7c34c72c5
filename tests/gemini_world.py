"""Fixtures for tests with the real Gemini CLI against the fake Gemini API.

``GeminiWorld`` is an isolated ``$GEMINI_CLI_HOME`` whose ``.gemini``
settings pre-answer the first-run dialogs (auth method, folder trust); see
docs/gemini.md. ``tests/agent_pty.PtyRun`` drives a launch in a PTY.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentpty.agents.base import agent_env
from agentpty.agents.gemini import GeminiProfile
from tests.fake_gemini_api import FakeGeminiAPI
from tests.helpers import empty_home, timeout

__all__ = ["GEMINI_BIN", "GeminiWorld", "gemini_world", "require_gemini", "seed_gemini_home"]

ROOT = Path(__file__).resolve().parent.parent
GEMINI_BIN = os.environ.get("AGENTPTY_TEST_GEMINI_BIN") or str(
    ROOT / ".cache/npm-gemini/node_modules/.bin/gemini"
)


def require_gemini() -> str:
    """The pinned CLI's path; a clear failure (not a skip) when `make gemini` was not run."""
    if not os.access(GEMINI_BIN, os.X_OK):
        pytest.fail(f"Gemini CLI not found at {GEMINI_BIN}: run `make gemini` (make test does)")
    return GEMINI_BIN


def seed_gemini_home(home: Path, trusted: tuple[Path, ...]) -> None:
    """``.gemini/settings.json`` and ``trustedFolders.json`` so the TUI starts without dialogs.

    Without ``security.auth.selectedType`` the TUI asks how to authenticate;
    without a trusted folder it asks "Do you trust the files in this folder?".
    """
    config = home / ".gemini"
    config.mkdir(parents=True, exist_ok=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (config / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    folders = {str(folder.resolve()): "TRUST_FOLDER" for folder in trusted}
    (config / "trustedFolders.json").write_text(json.dumps(folders, indent=2), encoding="utf-8")


@dataclass
class GeminiWorld:
    """An isolated Gemini home and a workspace, with the fake API running."""

    root: Path
    api: FakeGeminiAPI
    home: Path
    workspace: Path
    env: dict[str, str]

    def profile(self) -> GeminiProfile:
        return GeminiProfile(self.env, binary=require_gemini())

    def chat_files(self) -> list[Path]:
        return sorted(self.home.glob(".gemini/tmp/*/chats/*.jsonl"))

    async def wait_requests(self, count: int, wait: float = 60) -> None:
        ok = await asyncio.to_thread(self.api.wait_for_requests, count, timeout(wait))
        assert ok, f"the fake API got {len(self.api.requests)} requests, expected {count}"


@pytest.fixture
def gemini_world(tmp_path: Path) -> Iterator[GeminiWorld]:
    require_gemini()
    with FakeGeminiAPI() as api:
        home = tmp_path / "gemini-home"
        workspace = tmp_path / "proj"
        workspace.mkdir()
        seed_gemini_home(home, trusted=(workspace,))
        drop = ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA")
        env = agent_env(os.environ, drop=drop)
        env.update(
            {
                "GEMINI_CLI_HOME": str(home),
                "HOME": empty_home(tmp_path),
                "GEMINI_API_KEY": "fake-key",
                "GOOGLE_GEMINI_BASE_URL": api.url,
                # As a CI runner sets them: the profile must not pass them on,
                # or the CLI takes itself for headless and exits 42.
                "CI": "true",
                "GITHUB_ACTIONS": "true",
            }
        )
        yield GeminiWorld(tmp_path, api, home, workspace, env)
