"""Which Claude Code hooks fire when, checked on the CLI under test (pinned or newest).

The CLI runs in a real PTY with the settings ``ClaudeHooks.install`` writes
(every event agentpty uses): its http hooks post each payload to a recorder
on loopback (``HookRecorder``, standing in for the server's ``/api/hooks``)
with the headers filled from the agent's environment, and ``agentpty hook``
(SessionStart's command) posts there too. The order must match what was
recorded from 2.1.197 (tests/data/claude-hooks-2.1.197/tool.jsonl) and each
payload must carry what ``ClaudeHooks.parse`` reads. ``make test-claude-latest`` runs this on the
newest release: a failure here is version drift (record it in
docs/claude-code-findings.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentpty.agents.capabilities import HookEndpoint, ReportKind
from agentpty.agents.claude_hooks import SETTINGS_FILE, ClaudeHooks
from agentpty.service.hooks import HOOK_COMMAND
from agentpty.terminal.session import SessionLimits, TerminalSession
from tests.claude_env import claude_env, seed_claude_config
from tests.claude_permissions import asking_mode_args
from tests.claude_world import (
    API_KEY,
    PASTE_END,
    PASTE_START,
    approve_permission,
    require_claude,
)
from tests.fake_messages_api import FakeMessagesAPI
from tests.helpers import empty_home, eventually, timeout

pytestmark = pytest.mark.claude

RECORDED = Path(__file__).parent / "data" / "claude-hooks-2.1.197" / "tool.jsonl"


class HookRecorder:
    """An HTTP server on loopback keeping every hook post (payload and one header).

    A stand-in for agentpty's ``/api/hooks``: it answers 204 with no body,
    as the server does.
    """

    HEADER = "X-Agentpty-Project"

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.header_values: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.header_values.append(self.headers.get(HookRecorder.HEADER))
                recorder.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/hooks"

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[HookRecorder]:
        recorder = cls()
        thread = threading.Thread(target=recorder.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield recorder
        finally:
            recorder.server.shutdown()
            recorder.server.server_close()
            thread.join()

    def seen(self, name: str) -> bool:
        return any(e["hook_event_name"] == name for e in list(self.events))


async def on_screen(terminal: TerminalSession, text: str) -> None:
    await eventually(lambda: asyncio.sleep(0, text in terminal.screen.text()))


async def approve(terminal: TerminalSession) -> None:
    async def press_enter() -> None:
        terminal.send_input("\r")

    async def screen() -> str:
        return terminal.screen.text()

    await approve_permission(press_enter, screen)


async def test_tool_permission_timeline_matches_the_recording(tmp_path: Path) -> None:
    """Start, prompt, tool needing permission, Enter, stop: the hooks of the recording, in order."""
    binary = require_claude()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    hooks = ClaudeHooks()
    with FakeMessagesAPI() as api, HookRecorder.running() as recorder:
        command = (sys.executable, *HOOK_COMMAND)
        endpoint = HookEndpoint(recorder.url, {HookRecorder.HEADER: "PROJECT_VAR"}, command)
        hooks.install(tmp_path, endpoint)
        seed_claude_config(config, workspace, API_KEY)
        env = claude_env(config, api.url, API_KEY)
        env["HOME"] = empty_home(tmp_path)
        env["PROJECT_VAR"] = "project-7"
        env["AGENTPTY_HOOK_URL"] = recorder.url  # where ``agentpty hook`` posts
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
            # SessionEnd runs a hook command (a Python start) while the CLI
            # exits: on a loaded machine that outlasted the 3 s default grace,
            # and the SIGKILL took the hook with it.
            limits=SessionLimits(stop_grace=timeout(15)),
        )
        terminal.start()
        try:
            await eventually(lambda: asyncio.sleep(0, recorder.seen("SessionStart")))
            await on_screen(terminal, "❯")
            terminal.send_input(PASTE_START + "please [[bash: touch x]]" + PASTE_END)
            await on_screen(terminal, "touch x]]")
            terminal.send_input("\r")
            await on_screen(terminal, "Do you want to proceed?")
            await eventually(lambda: asyncio.sleep(0, recorder.seen("PermissionRequest")))
            await approve(terminal)
            await eventually(lambda: asyncio.sleep(0, recorder.seen("Stop")))
            await on_screen(terminal, "tool done")
            await terminal.stop()  # SIGTERM: SessionEnd (reason "other") still fires
        finally:
            if terminal.alive:
                await terminal.stop()
        seen = list(recorder.events)
        # Posted by the CLI itself: the header filled from its environment.
        posted = [
            value
            for event, value in zip(seen, recorder.header_values, strict=True)
            if event["hook_event_name"] != "SessionStart"
        ]
        assert posted and set(posted) == {"project-7"}, posted
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
