"""Fixtures for tests with the real Codex CLI against the fake Responses API.

``CodexWorld`` is an isolated ``$CODEX_HOME`` whose ``config.toml`` points a
model provider at ``tests/fake_responses_api.py``; ``PtyRun`` drives one
``Launch`` in a real PTY (``TerminalSession``, no server) and reads its
emulated screen. The config keys are what an unattended deployment needs so
that the TUI starts without dialogs (see docs/codex.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentpty.agents.base import Launch, agent_env
from agentpty.agents.codex import CodexProfile
from agentpty.terminal.session import TerminalSession
from tests.fake_responses_api import FakeResponsesAPI
from tests.helpers import timeout

__all__ = ["CODEX_BIN", "CodexWorld", "PtyRun", "codex_world", "require_codex"]

ROOT = Path(__file__).resolve().parent.parent
CODEX_BIN = os.environ.get("AGENTPTY_TEST_CODEX_BIN") or str(
    ROOT / ".cache/npm-codex/node_modules/.bin/codex"
)
API_KEY_VAR = "FAKE_OPENAI_API_KEY"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


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


class PtyRun:
    """One agent process in a real PTY; waits read the emulated screen."""

    def __init__(self, launch: Launch, cwd: Path, rows: int = 40, cols: int = 120) -> None:
        self.session = TerminalSession(
            "codex-test", launch.argv, cwd=str(cwd), env=launch.env, rows=rows, cols=cols
        )
        self._changed = asyncio.Event()
        self.exit_code: int | None = None

    async def __aenter__(self) -> PtyRun:
        self.session.add_output_listener(lambda _text: self._changed.set())
        self.session.add_exit_callback(self._on_exit)
        self.session.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session.alive:
            await self.session.stop("test over")

    def _on_exit(self, code: int) -> None:
        self.exit_code = code
        self._changed.set()

    def screen(self) -> str:
        return self.session.screen.text()

    async def wait_screen(self, text: str, wait: float = 30) -> str:
        """Wait until ``text`` is on the screen (or in its scrollback); return the screen."""
        try:
            async with asyncio.timeout(timeout(wait)):
                while text not in self.screen():
                    if self.exit_code is not None:
                        raise AssertionError(f"exited {self.exit_code} before {text!r}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{text!r} not on screen:\n{self.screen()}") from None
        return self.screen()

    async def wait_gone(self, text: str, wait: float = 30) -> None:
        """Wait until ``text`` is no longer on the visible screen."""
        try:
            async with asyncio.timeout(timeout(wait)):
                while text in "\n".join(self.session.screen.lines()):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{text!r} still on screen:\n{self.screen()}") from None

    async def wait_exit(self, wait: float = 30) -> int:
        async with asyncio.timeout(timeout(wait)):
            return await self.session.wait()

    async def settle(self, quiet: float = 0.2, wait: float = 30) -> None:
        """Wait until the screen has not changed for ``quiet`` seconds."""
        async with asyncio.timeout(timeout(wait)):
            while True:
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), quiet)
                except TimeoutError:
                    return

    async def type_prompt(self, text: str, ready: str) -> None:
        """Type like a person: at the ready marker, paste, see the echo, pause, Enter.

        Enter must be its own write, and not too soon: right after typed text
        Codex takes it for part of a paste burst, and within 40 ms of a paste
        Gemini CLI inserts a newline instead of submitting. agentpty's own
        delivery (terminal/delivery.py) pauses 0.2 s the same way.
        """
        await self.wait_screen(ready)
        # Start-up work may still redraw (and block the CLI) right after the
        # marker first shows; typed text is safe once the screen is quiet.
        await self.settle(0.5)
        self.session.send_input(PASTE_START + text + PASTE_END)
        await self.wait_screen(text.split()[0][:20])
        await self.settle()
        self.session.send_input("\r")


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
        yield CodexWorld(tmp_path, api, home, workspace, env)
