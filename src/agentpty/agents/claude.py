"""The ``claude`` profile: Claude Code in its interactive TUI, resumable.

Verified against the pinned CLI (see docs/claude-code-findings.md):
``--session-id=<uuid>`` starts a conversation with our id (its transcript
appears only after the first message), ``--resume=<uuid>`` continues one.
The ``--flag=value`` form keeps an id from ever being read as another flag.
Its capabilities: conversations whose ids agentpty chooses, hooks through a
``--settings`` file, and headless runs printing stream-json.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentpty.agents.base import InstalledCli, Launch
from agentpty.agents.capabilities import (
    DeliveryHints,
    RunEvent,
    RunEventKind,
    ScreenMarkers,
)
from agentpty.agents.claude_hooks import PROMPT_DIALOG_MARKERS, ClaudeHooks

__all__ = [
    "INSTALL_HINT",
    "ClaudeConversations",
    "ClaudeHeadless",
    "ClaudeHooks",
    "ClaudeProfile",
    "parse_stream_json",
]

INSTALL_HINT = (
    "install Claude Code with 'npm install -g @anthropic-ai/claude-code' (or set "
    "AGENTPTY_CLAUDE_BIN to its path), then log in once with 'claude' or set ANTHROPIC_API_KEY"
)
#: Claude Code takes a read of 800 characters or more as a paste; a slash
#: command over 500 characters is typed in 64-character pieces (DeliveryHints).
TYPED_PIECE = 64
TYPED_OVER = 500
#: Claude Code's conversation ids are UUIDs (it refuses anything else with "Invalid session ID").
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ClaudeConversations:
    """Conversations under ids agentpty chooses; a transcript per id in the config dir."""

    chooses_id = True

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    @property
    def config_dir(self) -> Path:
        configured = self._env.get("CLAUDE_CONFIG_DIR")
        return Path(configured) if configured else Path(self._env.get("HOME", "~")) / ".claude"

    def valid_id(self, value: str) -> bool:
        return bool(UUID_PATTERN.fullmatch(value))

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def transcript(self, conversation_id: str) -> Path | None:
        """The conversation's transcript file, found by glob (the folder name may be shortened)."""
        if not self.valid_id(conversation_id):
            return None  # never put a foreign string into a glob pattern
        for path in self.config_dir.expanduser().glob(f"projects/*/{conversation_id}.jsonl"):
            return path
        return None

    def exists(self, conversation_id: str) -> bool:
        path = self.transcript(conversation_id)
        if path is None:
            return False
        try:
            with path.open("rb") as handle:
                return any(_is_message(line) for line in handle)
        except OSError:
            return False

    def discover(self, cwd: str, since: datetime) -> str | None:
        return None  # the id is ours from the start


class ClaudeHeadless:
    """``claude -p --output-format=stream-json --verbose``: one NDJSON event per line."""

    def __init__(self, profile: ClaudeProfile) -> None:
        self._profile = profile

    def launch(self, *, cwd: str, prompt: str, conversation_id: str | None) -> Launch:
        conversation, resumed = self._profile.conversation_args(conversation_id)
        argv = [
            self._profile.executable() or self._profile.binary,
            "-p",
            "--output-format=stream-json",
            "--verbose",
            *conversation,
            *self._profile.common_args(),
            "--",
            prompt,
        ]
        return Launch(argv=argv, env=self._profile.env(), resumed=resumed)

    def parse(self, event: Mapping[str, Any]) -> RunEvent | None:
        return parse_stream_json(event)


class ClaudeProfile(InstalledCli):
    name = "claude"
    cli_name = "Claude Code"
    install_hint = INSTALL_HINT
    markers = ScreenMarkers(
        ready="❯",
        # The permission dialog's question counts as busy: its menu shows a "❯" too,
        # and a command typed into it would answer it (h12, see claude_hooks.py).
        busy=("esc to interrupt", "Do you want to proceed?"),
        refusal=("Unknown command", "Unknown slash command"),
        expired=(
            "No conversation found with session ID",
            "is already in use",
            "Invalid session ID",
        ),
        asking=PROMPT_DIALOG_MARKERS,
    )
    bracketed_paste = True
    takes_initial_prompt = True
    delivery = DeliveryHints(
        resubmit_lost_enter=True, type_slash_commands=TYPED_PIECE, typed_over=TYPED_OVER
    )

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        binary: str = "claude",
        extra_args: Sequence[str] = (),
        settings_path: Path | None = None,
    ) -> None:
        super().__init__(env, binary=binary, extra_args=extra_args)
        self.conversations = ClaudeConversations(self._env)
        self.hooks = ClaudeHooks(settings_path)
        self.headless = ClaudeHeadless(self)

    def conversation_args(self, conversation_id: str | None) -> tuple[list[str], bool]:
        """``--resume`` when the conversation holds messages, else ``--session-id``; resumed?"""
        if conversation_id is None:
            return [], False
        if self.conversations.exists(conversation_id):
            return [f"--resume={conversation_id}"], True
        return [f"--session-id={conversation_id}"], False

    def common_args(self) -> list[str]:
        args = []
        if self.hooks.settings_path is not None:
            args.append(f"--settings={self.hooks.settings_path}")
        return args + self.extra_args

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        conversation, resumed = self.conversation_args(conversation_id)
        argv = [self.executable() or self.binary, *conversation, *self.common_args()]
        if initial_prompt:
            # After "--" nothing (a prompt starting with "-") can be read as a flag.
            argv += ["--", initial_prompt]
        return Launch(argv=argv, env=self.env(), resumed=resumed)


def parse_stream_json(event: Mapping[str, Any]) -> RunEvent | None:
    """One stream-json event of ``claude -p`` in agentpty's words; None for others."""
    kind = event.get("type")
    conversation_id = _text(event.get("session_id"))
    if kind == "system" and event.get("subtype") == "init":
        return RunEvent(RunEventKind.INIT, conversation_id)
    if kind in ("assistant", "user"):
        return RunEvent(RunEventKind.MESSAGE, conversation_id, text=_message_text(event))
    if kind == "result":
        is_error = bool(event.get("is_error"))
        text = _text(event.get("result"))
        if is_error and text is None:
            text = f"the run ended with {event.get('subtype') or 'an error'}"
        cost, duration = event.get("total_cost_usd"), event.get("duration_ms")
        return RunEvent(
            RunEventKind.RESULT,
            conversation_id,
            text=text,
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
            duration_ms=int(duration) if isinstance(duration, int | float) else None,
            is_error=is_error,
        )
    return None


def _is_message(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("type") in ("user", "assistant")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _message_text(event: Mapping[str, Any]) -> str | None:
    """The text parts of a stream-json message (tool calls and results have none)."""
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ]
    return "".join(parts) if parts else None
