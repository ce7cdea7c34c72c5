"""The ``claude`` profile: Claude Code in its interactive TUI, resumable.

Verified against the pinned CLI (see docs/claude-code-findings.md):
``--session-id=<uuid>`` starts a conversation with our id (its transcript
appears only after the first message), ``--resume=<uuid>`` continues one.
The ``--flag=value`` form keeps an id from ever being read as another flag.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentpty.agents.base import Launch

__all__ = ["INSTALL_HINT", "ClaudeProfile"]

INSTALL_HINT = (
    "install Claude Code with 'npm install -g @anthropic-ai/claude-code' (or set "
    "AGENTPTY_CLAUDE_BIN to its path), then log in once with 'claude' or set ANTHROPIC_API_KEY"
)


class ClaudeProfile:
    name = "claude"
    ready_marker: str | None = "❯"
    #: The permission dialog's question counts as busy: its menu shows a "❯" too,
    #: and a command typed into it would answer it (h12, see claude_hooks.py).
    busy_markers: tuple[str, ...] = ("esc to interrupt", "Do you want to proceed?")
    rejection_markers: tuple[str, ...] = ("Unknown command", "Unknown slash command")
    has_conversations = True
    bracketed_paste = True
    expired_markers: tuple[str, ...] = (
        "No conversation found with session ID",
        "is already in use",
        "Invalid session ID",
    )

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        binary: str = "claude",
        extra_args: Sequence[str] = (),
        settings_path: Path | None = None,
    ) -> None:
        self._env = dict(env)
        self.binary = binary
        self.extra_args = list(extra_args)
        self.settings_path = settings_path

    @property
    def config_dir(self) -> Path:
        configured = self._env.get("CLAUDE_CONFIG_DIR")
        return Path(configured) if configured else Path(self._env.get("HOME", "~")) / ".claude"

    def executable(self) -> str | None:
        return shutil.which(self.binary, path=self._env.get("PATH", os.defpath))

    def unavailable_reason(self) -> str | None:
        if self.executable() is None:
            return f"the Claude Code binary {self.binary!r} was not found: {INSTALL_HINT}"
        return None

    def transcript(self, session_id: str) -> Path | None:
        """The conversation's transcript file, found by glob (the folder name may be shortened)."""
        for path in self.config_dir.expanduser().glob(f"projects/*/{session_id}.jsonl"):
            return path
        return None

    def conversation_exists(self, session_id: str) -> bool:
        path = self.transcript(session_id)
        if path is None:
            return False
        try:
            with path.open("rb") as handle:
                for line in handle:
                    if _is_message(line):
                        return True
        except OSError:
            return False
        return False

    def _conversation_args(self, session_id: str | None) -> tuple[list[str], bool]:
        if session_id is None:
            return [], False
        if self.conversation_exists(session_id):
            return [f"--resume={session_id}"], True
        return [f"--session-id={session_id}"], False

    def _common_args(self) -> list[str]:
        args = []
        if self.settings_path is not None:
            args.append(f"--settings={self.settings_path}")
        return args + self.extra_args

    def launch(
        self, *, cwd: str, session_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        conversation, resumed = self._conversation_args(session_id)
        argv = [self.executable() or self.binary, *conversation, *self._common_args()]
        if initial_prompt:
            # After "--" nothing (a prompt starting with "-") can be read as a flag.
            argv += ["--", initial_prompt]
        return Launch(argv=argv, env=dict(self._env), resumed=resumed)

    def headless(self, *, prompt: str, session_id: str | None) -> Launch:
        """argv for ``claude -p`` with NDJSON events, same resume rule."""
        conversation, resumed = self._conversation_args(session_id)
        argv = [
            self.executable() or self.binary,
            "-p",
            "--output-format=stream-json",
            "--verbose",
            *conversation,
            *self._common_args(),
            "--",
            prompt,
        ]
        return Launch(argv=argv, env=dict(self._env), resumed=resumed)


def _is_message(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("type") in ("user", "assistant")
