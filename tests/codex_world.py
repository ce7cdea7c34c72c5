"""Fixtures for tests with the real Codex CLI against the fake Responses API.

``CodexWorld`` is an isolated ``$CODEX_HOME`` whose ``config.toml`` points a
model provider at ``tests/fake_responses_api.py``; ``tests/agent_pty.PtyRun``
drives a profile's launch in a real PTY. The config keys are what an
unattended deployment needs so that the TUI starts without dialogs (see
docs/codex.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentpty.agents.base import agent_env
from agentpty.agents.codex import CodexProfile
from tests.fake_responses_api import FakeResponsesAPI
from tests.helpers import empty_home, timeout

__all__ = ["CODEX_BIN", "CodexWorld", "codex_world", "require_codex"]

ROOT = Path(__file__).resolve().parent.parent
CODEX_BIN = os.environ.get("AGENTPTY_TEST_CODEX_BIN") or str(
    ROOT / ".cache/npm-codex/node_modules/.bin/codex"
)
API_KEY_VAR = "FAKE_OPENAI_API_KEY"


def require_codex() -> str:
    """The pinned CLI's path; a clear failure (not a skip) when `make codex` was not run."""
    if not os.access(CODEX_BIN, os.X_OK):
        pytest.fail(f"Codex CLI not found at {CODEX_BIN}: run `make codex` (make test does)")
    return CODEX_BIN


def write_codex_config(home: Path, base_url: str, trusted: tuple[Path, ...] = ()) -> None:
    """``config.toml`` with a model provider at ``base_url`` and ``trusted`` folders.

    ``requires_openai_auth`` is off for a custom provider, so no login screen
    shows; a trusted folder shows no "Trust this folder?" dialog (git repos).
    """
    lines = [
        'model = "gpt-fake"',
        'model_provider = "fake"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.fake]",
        'name = "Fake Responses API"',
        f'base_url = "{base_url}"',
        'wire_api = "responses"',
        f'env_key = "{API_KEY_VAR}"',
    ]
    for folder in trusted:
        lines += ["", f'[projects."{folder.resolve()}"]', 'trust_level = "trusted"']
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class CodexWorld:
    """An isolated Codex home and a workspace, with the fake API running."""

    root: Path
    api: FakeResponsesAPI
    home: Path
    workspace: Path
    env: dict[str, str]

    def profile(self) -> CodexProfile:
        return CodexProfile(self.env, binary=require_codex())

    def rollouts(self) -> list[Path]:
        return sorted(self.home.glob("sessions/*/*/*/rollout-*.jsonl"))

    async def wait_requests(self, count: int, wait: float = 30) -> None:
        ok = await asyncio.to_thread(self.api.wait_for_requests, count, timeout(wait))
        assert ok, f"the fake API got {len(self.api.requests)} requests, expected {count}"


@pytest.fixture
def codex_world(tmp_path: Path) -> Iterator[CodexWorld]:
    require_codex()
    with FakeResponsesAPI() as api:
        home = tmp_path / "codex-home"
        workspace = tmp_path / "proj"
        workspace.mkdir()
        write_codex_config(home, api.url + "/v1", trusted=(workspace,))
        env = agent_env(os.environ, drop=("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY"))
        env.update({"CODEX_HOME": str(home), API_KEY_VAR: "sk-fake-" + "k" * 32})
        env["HOME"] = empty_home(tmp_path)
        yield CodexWorld(tmp_path, api, home, workspace, env)
