"""The ``codex`` profile: OpenAI's Codex CLI in its interactive TUI, resumable.

Verified against the pinned CLI 0.171.0 (see docs/codex.md):

- Codex chooses the conversation id; agentpty learns it from the rollout
  file Codex writes at the first prompt (``CodexConversations.discover``).
- ``codex resume <id>`` continues a conversation; an id Codex does not know
  ends the process with one of ``markers.expired`` on screen.
- ``--no-daemon``: without it the TUI starts a shared app-server daemon that
  outlives the terminal session and copies the CLI (about 400 MB) into
  ``$CODEX_HOME/packages``.
- Headless: ``codex exec --json`` prints ``thread.started`` (the id),
  ``item.completed`` and ``turn.completed`` / ``turn.failed``.
- Hooks: Codex runs Claude-style hooks from ``hooks.json`` but only after a
  person trusted them in the TUI (or with ``--dangerously-bypass-hook-trust``,
  which would also run a workspace's own hooks unvetted), so the profile
  declares none and the services fall back to the screen markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from agentpty.agents.codex_rollouts import CodexConversations

__all__ = ["DELIVERY", "INSTALL_HINT", "MARKERS", "CodexHeadless", "CodexProfile"]

INSTALL_HINT = (
    "install the Codex CLI with 'npm install -g @openai/codex' (or set AGENTPTY_CODEX_BIN "
    "to its path), then log in once with 'codex login' or configure a model provider in "
    "$CODEX_HOME/config.toml"
)

#: Seen on the pyte-rendered screen of Codex 0.171.0 (docs/codex.md).
MARKERS = ScreenMarkers(
    # The composer's footer; hidden while the input box holds text or a dialog shows.
    ready="? for shortcuts",
    # "• Working (3s • esc to interrupt)" above the composer while a turn runs.
    busy=("esc to interrupt",),
    refusal=("Unrecognized command",),
    expired=(
        "No saved session found with ID",
        "Failed to resume session",
        "no rollout found for thread id",
    ),
)

#: docs/codex.md: a refused command stays in the input box (hiding the ready
#: footer) until Ctrl-C clears it; Ctrl-C on an empty box quits Codex.
DELIVERY = DeliveryHints(clear_refused="\x03", paste_echo="[Pasted Content")

#: Items of ``codex exec --json`` that are tool work (reported without text).
_TOOL_ITEMS = frozenset(
    {"command_execution", "file_change", "mcp_tool_call", "web_search", "todo_list"}
)


class CodexHeadless:
    """``HeadlessSupport``: ``codex exec --json``, resuming with ``exec resume <id>``."""

    def __init__(self, profile: CodexProfile) -> None:
        self._profile = profile

    def launch(self, *, cwd: str, prompt: str, conversation_id: str | None) -> Launch:
        """argv for one run; stdin must be closed or /dev/null (exec reads a piped stdin)."""
        resume, resumed = self._profile.resume_args(conversation_id)
        argv = [
            self._profile.executable() or self._profile.binary,
            "exec",
            "--json",
            # agentpty's workspaces need not be git repositories.
            "--skip-git-repo-check",
            *self._profile.extra_args,
            *resume,
            "--",
            prompt,
        ]
        return Launch(argv=argv, env=self._profile.env(), resumed=resumed)

    def parse(self, event: Mapping[str, Any]) -> RunEvent | None:
        kind = event.get("type")
        if kind == "thread.started":
            found = event.get("thread_id")
            if isinstance(found, str) and self._profile.conversations.valid_id(found):
                return RunEvent(RunEventKind.INIT, conversation_id=found)
            return None
        if kind == "item.completed":
            return _item_event(event.get("item"))
        if kind == "turn.completed":
            return RunEvent(RunEventKind.RESULT)
        if kind == "turn.failed":
            return RunEvent(RunEventKind.RESULT, text=event_error_text(event), is_error=True)
        if kind == "error":
            return RunEvent(RunEventKind.MESSAGE, text=event_error_text(event), is_error=True)
        return None


def _item_event(item: object) -> RunEvent | None:
    if not isinstance(item, dict):
        return None
    kind = item.get("type")
    if kind == "agent_message":
        return RunEvent(RunEventKind.MESSAGE, text=str(item.get("text", "")))
    if kind == "error":
        # Non-fatal notices, e.g. "Model metadata for `x` not found".
        return RunEvent(RunEventKind.MESSAGE, text=str(item.get("message", "")), is_error=True)
    if kind in _TOOL_ITEMS:
        return RunEvent(RunEventKind.MESSAGE)
    return None


class CodexProfile(InstalledCli):
    """The Codex CLI's TUI: conversations discovered, resumed with ``codex resume``."""

    name = "codex"
    cli_name = "Codex CLI"
    install_hint = INSTALL_HINT
    markers = MARKERS
    #: Codex takes a bracketed paste as one block (a long one shows as
    #: "[Pasted Content N chars]"); Enter must come as a separate write.
    bracketed_paste = True
    takes_initial_prompt = True
    delivery = DELIVERY
    hooks: HookSupport | None = None

    def __init__(
        self, env: Mapping[str, str], *, binary: str = "codex", extra_args: Sequence[str] = ()
    ) -> None:
        super().__init__(env, binary=binary, extra_args=extra_args)
        self.conversations = CodexConversations(self.home)
        self.headless = CodexHeadless(self)

    @property
    def home(self) -> Path:
        """``$CODEX_HOME``, where Codex keeps config, auth and rollouts."""
        configured = self._env.get("CODEX_HOME")
        if configured:
            return Path(configured)
        return Path(self._env.get("HOME", "~")).expanduser() / ".codex"

    def resume_args(self, conversation_id: str | None) -> tuple[list[str], bool]:
        """``["resume", id]`` when the conversation can be resumed, else a fresh start.

        An id without a rollout holding messages (never prompted, or deleted)
        cannot be resumed; the fresh conversation's id is learnt afterwards
        (``conversations.discover``, or a headless run's ``INIT``).
        """
        if conversation_id is None:
            return [], False
        if not self.conversations.valid_id(conversation_id):
            raise ValueError(f"not a Codex conversation id: {conversation_id!r}")
        if not self.conversations.exists(conversation_id):
            return [], False
        return ["resume", conversation_id], True

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        """argv to resume ``conversation_id`` with ``codex resume``, or to start afresh.

        If the rollout vanishes between this check and the start, Codex
        prints one of ``markers.expired`` and exits 1 (docs/codex.md).
        """
        resume, resumed = self.resume_args(conversation_id)
        # Options follow the subcommand: "codex resume" takes the same ones.
        argv = [self.executable() or self.binary, *resume[:1], "--no-daemon", *self.extra_args]
        argv += resume[1:]
        if initial_prompt:
            # After "--" nothing (a prompt starting with "-") can be read as a flag.
            argv += ["--", initial_prompt]
        return Launch(argv=argv, env=self.env(), resumed=resumed)
