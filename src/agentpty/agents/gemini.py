"""The ``gemini`` profile: Google's Gemini CLI in its interactive TUI, resumable.

Verified against the pinned CLI 0.61.0 (see docs/gemini.md):

- ``--session-id=<uuid>`` starts a conversation under agentpty's id; its
  chat file ``<gemini dir>/tmp/<project>/chats/session-<time>-<id[:8]>.jsonl``
  is written at start-up, before any prompt. ``--resume=<uuid>`` continues it.
- Ids Gemini does not know, or a ``--session-id`` already used, end the
  process (exit 42) with one of ``markers.expired`` on screen.
- Headless: ``gemini --prompt=<text> --output-format stream-json`` prints
  ``init`` (the id), ``message`` and ``result`` events.
- Gemini runs unknown slash commands as prompts: there is no refusal marker.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentpty.agents.base import InstalledCli, Launch, event_error_text
from agentpty.agents.capabilities import (
    DeliveryHints,
    HookSupport,
    RunEvent,
    RunEventKind,
    ScreenMarkers,
)

__all__ = [
    "DELIVERY",
    "INSTALL_HINT",
    "MARKERS",
    "GeminiConversations",
    "GeminiHeadless",
    "GeminiProfile",
]

INSTALL_HINT = (
    "install the Gemini CLI with 'npm install -g @google/gemini-cli' (or set "
    "AGENTPTY_GEMINI_BIN to its path), then set GEMINI_API_KEY or log in once with 'gemini'"
)

#: Seen on the pyte-rendered screen of Gemini CLI 0.61.0 (docs/gemini.md).
MARKERS = ScreenMarkers(
    # The empty input box's placeholder; it stays while a turn runs.
    ready="Type your message",
    # "⠋ Thinking... (esc to cancel, 1s)" above the input box while a turn runs.
    busy=("esc to cancel",),
    refusal=(),
    expired=(
        # --resume=<id> when other conversations of the folder exist, and when none do.
        "Invalid session identifier",
        "No previous sessions found",
        # --session-id=<id> when that conversation holds messages.
        "already exists. Use --resume",
    ),
)

#: docs/gemini.md: under load the first Enter after a start is sometimes not
#: taken, and a start-up took up to ~40 s on a loaded machine.
DELIVERY = DeliveryHints(confirm_submit=True, confirm_window=5.0, min_ready_timeout=120.0)

# Variables from which the CLI concludes it runs without a terminal.
HEADLESS_MARKERS = ("CI", "GITHUB_ACTIONS")

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The context block Gemini puts before the first prompt, stored as a user message.
_CONTEXT_PREFIX = "<session_context>"


class GeminiConversations:
    """``ConversationSupport`` for Gemini: agentpty chooses the id (``--session-id``)."""

    chooses_id = True

    def __init__(self, gemini_dir: Path) -> None:
        #: ``$GEMINI_CLI_HOME/.gemini`` (``~/.gemini`` unless set).
        self.gemini_dir = gemini_dir

    def valid_id(self, value: str) -> bool:
        return _ID.fullmatch(value) is not None

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def chat_file(self, conversation_id: str) -> Path | None:
        """The conversation's chat file, or None (also for a malformed id)."""
        if not self.valid_id(conversation_id):
            return None
        pattern = f"tmp/*/chats/session-*-{conversation_id[:8]}.jsonl"
        for path in self.gemini_dir.glob(pattern):
            entries = _entries(path)
            first = next(entries, None)
            if first is not None and first.get("sessionId") == conversation_id:
                return path
        return None

    def exists(self, conversation_id: str) -> bool:
        path = self.chat_file(conversation_id)
        return path is not None and any(_is_message(entry) for entry in _entries(path))

    def discover(self, cwd: str, since: datetime) -> str | None:
        """Never needed: agentpty chose the id before the start."""
        return None


class GeminiHeadless:
    """``HeadlessSupport``: ``gemini --prompt=… --output-format stream-json``."""

    def __init__(self, profile: GeminiProfile) -> None:
        self._profile = profile

    def launch(self, *, cwd: str, prompt: str, conversation_id: str | None) -> Launch:
        conversation, resumed = self._profile.conversation_args(conversation_id)
        argv = [
            self._profile.executable() or self._profile.binary,
            # The "=" form keeps a prompt starting with "-" from being read as a flag.
            f"--prompt={prompt}",
            "--output-format=stream-json",
            *conversation,
            *self._profile.extra_args,
        ]
        return Launch(argv=argv, env=self._profile.env(), resumed=resumed)

    def parse(self, event: Mapping[str, Any]) -> RunEvent | None:
        kind = event.get("type")
        if kind == "init":
            found = event.get("session_id")
            if isinstance(found, str) and self._profile.conversations.valid_id(found):
                return RunEvent(RunEventKind.INIT, conversation_id=found)
            return None
        if kind == "message":
            if event.get("role") != "assistant":
                return None
            # With "delta": true the text is one streamed fragment of the answer.
            return RunEvent(
                RunEventKind.MESSAGE,
                text=str(event.get("content", "")),
                delta=event.get("delta") is True,
            )
        if kind in ("tool_use", "tool_result"):
            return RunEvent(RunEventKind.MESSAGE)
        if kind == "error":
            return RunEvent(RunEventKind.MESSAGE, text=event_error_text(event), is_error=True)
        if kind == "result":
            stats = event.get("stats")
            duration = stats.get("duration_ms") if isinstance(stats, dict) else None
            return RunEvent(
                RunEventKind.RESULT,
                text=event_error_text(event),
                duration_ms=duration if isinstance(duration, int) else None,
                is_error=event.get("status") != "success",
            )
        return None


class GeminiProfile(InstalledCli):
    """The Gemini CLI's TUI under an id agentpty chooses."""

    name = "gemini"
    cli_name = "Gemini CLI"
    install_hint = INSTALL_HINT
    markers = MARKERS
    bracketed_paste = True
    takes_initial_prompt = True
    delivery = DELIVERY
    hooks: HookSupport | None = None

    def __init__(
        self, env: Mapping[str, str], *, binary: str = "gemini", extra_args: Sequence[str] = ()
    ) -> None:
        super().__init__(env, binary=binary, extra_args=extra_args)
        self.conversations = GeminiConversations(self.gemini_dir)
        self.headless = GeminiHeadless(self)

    @property
    def gemini_dir(self) -> Path:
        home = self._env.get("GEMINI_CLI_HOME") or self._env.get("HOME", "~")
        return Path(home).expanduser() / ".gemini"

    def env(self) -> dict[str, str]:
        env = super().env()
        # The CLI takes CI=true or GITHUB_ACTIONS=true to mean "headless" even
        # on a terminal: it then refuses to draw its prompt and exits 42. The
        # agent always runs in a real PTY, so a server started from a CI job
        # must not pass those on.
        for name in HEADLESS_MARKERS:
            env.pop(name, None)
        # The CLI otherwise re-executes itself in a second Node process (for a
        # larger heap) at every start: twice the start-up work.
        env["GEMINI_CLI_NO_RELAUNCH"] = "true"
        return env

    def conversation_args(self, conversation_id: str | None) -> tuple[list[str], bool]:
        """``--resume`` for a conversation with messages, else ``--session-id``."""
        if conversation_id is None:
            return [], False
        if not self.conversations.valid_id(conversation_id):
            raise ValueError(f"not a Gemini conversation id: {conversation_id!r}")
        if self.conversations.exists(conversation_id):
            return [f"--resume={conversation_id}"], True
        return [f"--session-id={conversation_id}"], False

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        conversation, resumed = self.conversation_args(conversation_id)
        argv = [self.executable() or self.binary, *conversation, *self.extra_args]
        if initial_prompt:
            # A positional prompt after "--" is shown but never submitted
            # (0.61.0); "--prompt-interactive=" submits it, "-" and all.
            argv.append(f"--prompt-interactive={initial_prompt}")
        return Launch(argv=argv, env=self.env(), resumed=resumed)


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry
    except OSError:
        return


def _is_message(entry: dict[str, Any]) -> bool:
    """A typed prompt or an answer; the session-context block does not count."""
    kind = entry.get("type")
    if kind == "gemini":
        return True
    if kind != "user":
        return False
    content = entry.get("content")
    if isinstance(content, str):
        return not content.startswith(_CONTEXT_PREFIX)
    parts = content if isinstance(content, list) else []
    return any(
        isinstance(part, dict)
        and isinstance(part.get("text"), str)
        and not part["text"].startswith(_CONTEXT_PREFIX)
        for part in parts
    )
