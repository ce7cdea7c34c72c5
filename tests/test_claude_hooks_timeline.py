"""Which Claude Code hooks fire when, checked on the CLI under test (pinned or newest).

The CLI runs in a real PTY with the settings ``ClaudeHooks.install`` writes
(every event agentpty uses), the hook command appending each payload to a
file. The order must match what was recorded from 2.1.197
(tests/data/claude-hooks-2.1.197/tool.jsonl) and each payload must carry what
``ClaudeHooks.parse`` reads. ``make test-claude-latest`` runs this on the
newest release: a failure here is version drift (record it in
docs/claude-code-findings.md).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from pathlib import Path

import pytest

from agentpty.agents.capabilities import ReportKind
from agentpty.agents.claude_hooks import SETTINGS_FILE, ClaudeHooks
from agentpty.terminal.session import TerminalSession
from tests.claude_env import claude_env, seed_claude_config
from tests.claude_permissions import asking_mode_args
from tests.claude_world import API_KEY, PASTE_END, PASTE_START, require_claude
from tests.fake_messages_api import FakeMessagesAPI
from tests.helpers import empty_home, eventually

pytestmark = pytest.mark.claude

RECORDED = Path(__file__).parent / "data" / "claude-hooks-2.1.197" / "tool.jsonl"


def events(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def on_screen(terminal: TerminalSession, text: str) -> None:
    await eventually(lambda: asyncio.sleep(0, text in terminal.screen.text()))


async def approve(terminal: TerminalSession) -> None:
    """Enter on the permission dialog, again if it stays.

    Claude Code 2.1.332 ignores an Enter that comes right as the dialog is
    drawn (docs/claude-code-findings.md); a person would press it again.
    """
    for _ in range(3):
        terminal.send_input("\r")
        try:
            await eventually(
                lambda: asyncio.sleep(0, "Do you want to proceed?" not in terminal.screen.text()),
                wait=3,
            )
            return
        except TimeoutError:
            continue
    raise AssertionError("the permission dialog stayed:\n" + terminal.screen.text())


async def test_tool_permission_timeline_matches_the_recording(tmp_path: Path) -> None:
    """Start, prompt, tool needing permission, Enter, stop: the hooks of the recording, in order."""
    binary = require_claude()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    log = tmp_path / "hooks.jsonl"
    hooks = ClaudeHooks()
    hooks.install(
        tmp_path, ["sh", "-c", f"cat >> {shlex.quote(str(log))}; echo >> {shlex.quote(str(log))}"]
    )
    with FakeMessagesAPI() as api:
        seed_claude_config(config, workspace, API_KEY)
        env = claude_env(config, api.url, API_KEY)
        env["HOME"] = empty_home(tmp_path)
        terminal = TerminalSession(
            "timeline",
            [
                binary,
                f"--session-id={uuid.uuid4()}",
                f"--settings={tmp_path / SETTINGS_FILE}",
                asking_mode_args(binary),
            ],
            cwd=str(workspace),
            env=env,
            rows=40,
            cols=120,
            idle_timeout=None,
        )
        terminal.start()
        try:
            await eventually(
                lambda: asyncio.sleep(
                    0, any(e["hook_event_name"] == "SessionStart" for e in events(log))
                )
            )
            await on_screen(terminal, "❯")
            terminal.send_input(PASTE_START + "please [[bash: touch x]]" + PASTE_END)
            await on_screen(terminal, "touch x]]")
            terminal.send_input("\r")
            await on_screen(terminal, "Do you want to proceed?")
            await eventually(
                lambda: asyncio.sleep(
                    0, any(e["hook_event_name"] == "PermissionRequest" for e in events(log))
                )
            )
            await approve(terminal)
            await eventually(
                lambda: asyncio.sleep(0, any(e["hook_event_name"] == "Stop" for e in events(log)))
            )
            await on_screen(terminal, "tool done")
            await terminal.stop()  # SIGTERM: SessionEnd (reason "other") still fires
        finally:
            if terminal.alive:
                await terminal.stop()
    seen = events(log)
    # The permission Notification comes ~8 s after the dialog: only if the answer was slower.
    names = [e["hook_event_name"] for e in seen if e["hook_event_name"] != "Notification"]
    recorded = [json.loads(line)["hook_event_name"] for line in RECORDED.read_text().splitlines()]
    assert names == [n for n in recorded if n != "Notification"], names
    assert (workspace / "x").exists()
    reports = [hooks.parse(e) for e in seen]
    kinds = [r.kind for r in reports if r is not None]
    assert ReportKind.NEEDS_INPUT in kinds and ReportKind.TURN_ENDED in kinds
    asking = next(r for r in reports if r is not None and r.kind is ReportKind.NEEDS_INPUT)
    assert (asking.tool, asking.detail) == ("Bash", "touch x")
    prompt = next(r for r in reports if r is not None and r.kind is ReportKind.PROMPT_SUBMITTED)
    assert prompt.prompt == "please [[bash: touch x]]"
