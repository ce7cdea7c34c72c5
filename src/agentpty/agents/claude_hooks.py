"""Claude Code's hooks: the settings that make it report, and what its reports mean.

Verified on the pinned CLI (docs/claude-code-findings.md, "Hooks: which fire
when"; payloads recorded in tests/data/claude-hooks-<version>/):

- ``SessionStart`` at start-up, on resume and after ``/clear`` (new id);
- ``UserPromptSubmit`` with the text as typed (a slash command unexpanded);
- ``PreToolUse`` names the tool and its input before the permission check;
- ``PermissionRequest`` ~0.1 s later when the tool needs the user's consent
  (names the tool); ``Notification`` ``permission_prompt`` only ~8 s later
  and without the tool; ``Notification`` ``idle_prompt`` ~60 s after a turn;
- ``PostToolUse`` after the tool ran (``PostToolUseFailure`` when it failed);
- ``Stop`` when the turn ends; ``SessionEnd`` when the process ends or on ``/clear``.

Refusing a permission prompt (Esc) and interrupting a turn fire no hook at
all: the state service falls back to the screen for those.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentpty.agents.capabilities import AgentReport, HookEndpoint, ReportKind

__all__ = ["HOOK_EVENTS", "PROMPT_DIALOG_MARKERS", "SETTINGS_FILE", "ClaudeHooks"]

#: Every hook event agentpty asks Claude Code to report.
HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
)
SETTINGS_FILE = "claude-settings.json"
#: Text of Claude Code's permission and question dialogs on screen (2.1.197):
#: while it shows, the ``❯`` of the menu is not the prompt.
PROMPT_DIALOG_MARKERS = ("Do you want to proceed?", "Esc to cancel")

#: Events whose hooks Claude Code runs only as commands (an http hook is skipped).
_COMMAND_ONLY = frozenset({"SessionStart"})
#: Notification kinds meaning "the user must answer something now".
_ASKING = frozenset({"permission_prompt", "elicitation_dialog"})
#: How much of a tool's input is kept as words for a person.
_DETAIL_MAX = 300


class ClaudeHooks:
    """``HookSupport`` for Claude Code: a settings file passed with ``--settings``."""

    events = HOOK_EVENTS

    def __init__(self, settings_path: Path | None = None) -> None:
        #: Passed to every start once written (``install``); None: no hooks.
        self.settings_path = settings_path

    def install(self, data_dir: Path, endpoint: HookEndpoint) -> None:
        """Write the ``--settings`` file that sends every event of ``HOOK_EVENTS`` to ``endpoint``.

        HTTP hooks (Claude Code posts the payload itself; loopback is allowed)
        cost no process per event, where a command hook starts one, and a
        ``PreToolUse`` hook holds the tool until it returns. ``SessionStart``
        runs command hooks only (2.1.197 skips an http one), so it runs
        ``endpoint.command``. The header values are ``${NAME}`` references
        Claude Code fills from the agent's environment, only for names listed
        in ``allowedEnvVars``. The server answers with an empty body: a JSON
        answer to ``PermissionRequest`` would decide the permission instead
        of the user (the command prints nothing, for the same reason).
        """
        posted = {
            "type": "http",
            "url": endpoint.url,
            "headers": {name: f"${{{var}}}" for name, var in endpoint.env_headers.items()},
            "allowedEnvVars": sorted(endpoint.env_headers.values()),
            "timeout": 10,
        }
        run = {"type": "command", "command": shlex.join(endpoint.command), "timeout": 10}
        settings = {
            "hooks": {
                event: [{"matcher": "", "hooks": [run if event in _COMMAND_ONLY else posted]}]
                for event in self.events
            }
        }
        path = data_dir / SETTINGS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")
        path.chmod(0o600)  # like the server's other files (it holds no secret itself)
        self.settings_path = path

    def parse(self, payload: Mapping[str, Any]) -> AgentReport | None:
        """One hook payload in agentpty's words; None for events agentpty does not use."""
        event = payload.get("hook_event_name")
        conversation = _text(payload.get("session_id"))
        if event == "SessionStart":
            source = _text(payload.get("source"))
            return AgentReport(
                ReportKind.CONVERSATION_STARTED,
                conversation,
                source=source,
                fresh=source in ("startup", "clear"),
            )
        if event == "UserPromptSubmit":
            return AgentReport(
                ReportKind.PROMPT_SUBMITTED, conversation, prompt=_text(payload.get("prompt"))
            )
        tool = _text(payload.get("tool_name"))
        if event == "PreToolUse":
            return AgentReport(
                ReportKind.TOOL_STARTED, conversation, tool=tool, detail=_tool_detail(payload)
            )
        if event in ("PostToolUse", "PostToolUseFailure"):
            return AgentReport(ReportKind.TOOL_FINISHED, conversation, tool=tool)
        if event == "PermissionRequest":
            return AgentReport(
                ReportKind.NEEDS_INPUT, conversation, tool=tool, detail=_tool_detail(payload)
            )
        if event == "Notification":
            kind = payload.get("notification_type")
            if kind in _ASKING:
                return AgentReport(
                    ReportKind.NEEDS_INPUT, conversation, detail=_text(payload.get("message"))
                )
            if kind == "idle_prompt":
                return AgentReport(ReportKind.TURN_ENDED, conversation, source="idle_prompt")
            return None
        if event in ("Stop", "StopFailure"):
            return AgentReport(ReportKind.TURN_ENDED, conversation, source=event)
        if event == "SessionEnd":
            return AgentReport(
                ReportKind.CONVERSATION_ENDED, conversation, source=_text(payload.get("reason"))
            )
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _tool_detail(payload: Mapping[str, Any]) -> str | None:
    """What a tool call does, for a person: the command, the file, or its input as JSON."""
    tool_input = payload.get("tool_input")
    if not isinstance(tool_input, Mapping):
        return None
    for key in ("command", "file_path", "path", "url", "pattern", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str):
            return value[:_DETAIL_MAX]
    return json.dumps(tool_input, ensure_ascii=False)[:_DETAIL_MAX]
