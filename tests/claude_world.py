"""Fixtures for tests with the real Claude Code CLI against the fake Messages API."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentpty.service.container import build_profiles
from agentpty.terminal.delivery import input_box_text
from tests.claude_env import claude_env, seed_claude_config
from tests.fake_messages_api import FakeMessagesAPI
from tests.helpers import (
    RunningServer,
    TermClient,
    clean_shell,
    empty_home,
    eventually,
    make_settings,
    serve,
    timeout,
)

ROOT = Path(__file__).resolve().parent.parent
CLAUDE_BIN = os.environ.get("AGENTPTY_TEST_CLAUDE_BIN") or str(
    ROOT / ".cache/npm/node_modules/.bin/claude"
)
API_KEY = "sk-test-" + "k" * 40
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def require_claude() -> str:
    """The pinned CLI's path; a clear failure (not a skip) when `make claude` was not run."""
    if not os.access(CLAUDE_BIN, os.X_OK):
        pytest.fail(
            f"Claude Code CLI not found at {CLAUDE_BIN}: run `make claude` (make test does)"
        )
    return CLAUDE_BIN


@dataclass
class ClaudeWorld:
    """An isolated Claude config dir and environment pointing at the fake API."""

    root: Path
    api: FakeMessagesAPI
    config_dir: Path
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def settings_overrides(self) -> dict[str, Any]:
        return {"claude_bin": require_claude(), "default_agent": "claude"}

    def add_command(self, namespace: str, name: str, body: str) -> None:
        path = self.config_dir / "commands" / namespace / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)

    def trust(self, workspace: str | Path) -> None:
        seed_claude_config(self.config_dir, Path(workspace), API_KEY)

    def transcripts(self, session_id: str) -> list[Path]:
        return list(self.config_dir.glob(f"projects/*/{session_id}.jsonl"))

    async def wait_requests(self, count: int, wait: float = 30) -> None:
        ok = await asyncio.to_thread(self.api.wait_for_requests, count, timeout(wait))
        assert ok, f"the fake API got {len(self.api.requests)} requests, expected {count}"

    @contextlib.asynccontextmanager
    async def server(self, **overrides: Any) -> AsyncIterator[RunningServer]:
        settings = make_settings(self.data_dir, **{**self.settings_overrides(), **overrides})
        profiles = build_profiles(settings, environ=self.env)
        profiles["shell"] = clean_shell(self.env)
        async with serve(settings, profiles) as running:
            yield running

    async def create_project(self, server: RunningServer, name: str = "proj", **extra: Any) -> str:
        """A claude project whose workspace is trusted in the CLI's config before first start."""
        project_id = await server.create_project(name, agent="claude", workspace_path=name, **extra)
        project = await server.services.store.get_project(project_id)
        self.trust(project.workspace_path)
        return project_id


async def type_message(term: TermClient, text: str) -> None:
    """Type into Claude Code's TUI like a person: prompt, pause, paste, echo, Enter.

    The pause (no output for a moment) matters: right after the prompt appears,
    startup work such as the SessionStart hook still redraws the screen.
    """
    await term.read_until("❯", wait=30)
    await term.settle()
    mark = len(term.output)
    await term.type(PASTE_START + text + PASTE_END)
    # The TUI redraws only changed cells, so the echo may never be sent whole:
    # look in the rendered input box too.
    probe = text.split()[0][:20]
    async with asyncio.timeout(timeout(30)):
        while probe not in term.output[mark:] and probe not in (
            input_box_text(term.display(), "❯") or ""
        ):
            await term.recv(30)
    await term.type("\r")


#: Claude Code's permission dialog, while it is on screen.
PERMISSION_DIALOG = "Do you want to proceed?"


async def approve_permission(
    press_enter: Callable[[], Awaitable[None]], screen: Callable[[], Awaitable[str]]
) -> None:
    """Enter on the permission dialog once it shows, again while it stays on ``screen``.

    The agent state may say ``needs_input`` (the ``PermissionRequest`` hook)
    a moment before the dialog is drawn, and Claude Code 2.1.332 ignores an
    Enter that comes right as it is drawn (docs/claude-code-findings.md §j);
    a person would press it again. Only while the dialog shows: a stray
    Enter could submit whatever is typed next.
    """
    await eventually(lambda: _shows(screen, PERMISSION_DIALOG), wait=30)
    for _ in range(3):
        await press_enter()
        try:
            await eventually(lambda: _shows(screen, PERMISSION_DIALOG, shown=False), wait=3)
            return
        except TimeoutError:
            continue
    raise AssertionError("the permission dialog stayed:\n" + await screen())


async def _shows(screen: Callable[[], Awaitable[str]], text: str, *, shown: bool = True) -> bool:
    return (text in await screen()) is shown


async def approve_in(term: TermClient) -> None:
    """``approve_permission`` through a terminal client (its screen kept current)."""

    async def press_enter() -> None:
        await term.type("\r")

    async def screen() -> str:
        with contextlib.suppress(TimeoutError):
            await term.recv(0.05)
        return term.screen_text()

    await approve_permission(press_enter, screen)


@pytest.fixture
def claude_world(tmp_path: Path) -> Any:
    require_claude()
    with FakeMessagesAPI() as api:
        config_dir = tmp_path / "claude-config"
        config_dir.mkdir()
        env = claude_env(config_dir, api.url, API_KEY)
        env["HOME"] = empty_home(tmp_path)
        world = ClaudeWorld(tmp_path, api, config_dir, env)
        world.add_command("gsd", "new-project", "GSD-NEW-PROJECT with context file $ARGUMENTS")
        world.add_command("gsd", "new-milestone", "GSD-NEW-MILESTONE with context file $ARGUMENTS")
        yield world
