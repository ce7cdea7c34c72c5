"""What an agent CLI can do, declared by its profile in agentpty's own words.

A profile (``agents/<name>.py``) says which capabilities its agent has; the
services never guess from an agent's name or probe with ``getattr``:

- ``ScreenMarkers``: text on the emulated screen meaning ready, busy, a
  refused command, or a conversation that cannot be resumed. The fallback
  for agents without hooks, and the readiness test before typing.
- ``DeliveryHints``: quirks of the agent's input box that typing must
  respect (how to clear a refused command, whether an Enter must be
  confirmed, how slow a start may be).
- ``ConversationSupport``: the agent keeps conversations agentpty can resume.
  Either agentpty chooses the id before the first start (Claude Code's
  ``--session-id``) or the agent chooses it and agentpty learns it
  (``discover``, a hook report, a headless ``init`` event).
- ``HookSupport``: the agent reports what it does through hooks; ``parse``
  turns one hook payload into an ``AgentReport``.
- ``HeadlessSupport``: the agent runs one prompt without a terminal and
  prints JSON events; ``parse`` turns one event into a ``RunEvent``.

Nothing here does I/O beyond reading the agent's own files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentpty.agents.base import Launch

__all__ = [
    "AgentReport",
    "ConversationSupport",
    "DeliveryHints",
    "HeadlessSupport",
    "HookEndpoint",
    "HookSupport",
    "ReportKind",
    "RunEvent",
    "RunEventKind",
    "ScreenMarkers",
]


@dataclass(frozen=True)
class ScreenMarkers:
    """Text on the emulated screen that tells what the agent is doing."""

    #: Means "waits for input"; None: output quiet for a while counts as ready.
    ready: str | None = None
    #: Means "busy" even while ``ready`` shows (Claude Code keeps its prompt on screen).
    busy: tuple[str, ...] = ()
    #: After a submitted command: the agent refused it (e.g. an unknown slash command).
    refusal: tuple[str, ...] = ()
    #: In the agent's first output: the stored conversation cannot be resumed.
    expired: tuple[str, ...] = ()
    #: Means "a question or permission dialog waits for the user" (its menu may
    #: show ``ready`` too): the agent-state fallback for hooks that stay silent.
    asking: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryHints:
    """How commands must be typed into this agent, beyond paste and Enter.

    The defaults suit an agent whose input box empties itself after a
    refusal and which takes every Enter.
    """

    #: Keys that clear a refused command left in the input box. Sent only
    #: while the ready marker is hidden (the box holds text): on an empty
    #: box the same keys may quit the agent (Codex's Ctrl-C).
    clear_refused: str | None = None
    #: Confirm each submission: after Enter, a busy marker or the ready
    #: marker's return must show within ``confirm_window`` seconds, else
    #: Enter is pressed once more (an Enter the agent dropped under load).
    confirm_submit: bool = False
    confirm_window: float = 5.0
    #: The readiness wait is at least this long (a slow start-up), whatever
    #: the server's ``ready_timeout``.
    min_ready_timeout: float = 0.0
    #: How the input box echoes a long paste instead of its text (e.g.
    #: ``"[Pasted Content"``): whoever confirms a command by its echo must
    #: accept this too.
    paste_echo: str | None = None
    #: After a command's outcome watch, if the typed text still sits in the
    #: input box (the line with the ready marker), its Enter was lost: press
    #: Enter once more (Claude Code drops an Enter typed while it settles
    #: right after start-up).
    resubmit_lost_enter: bool = False
    #: Type a one-line slash command longer than ``typed_over`` characters in
    #: pieces of this many characters, without bracketed paste (0: paste it
    #: like any command). Claude Code 2.1.332 no longer runs a slash command
    #: that arrives as one long paste: it hands the model the text wrapped in
    #: ``<pasted_content>``. Short ones are still pasted (they always worked).
    type_slash_commands: int = 0
    typed_over: int = 0


class ReportKind(StrEnum):
    """What an agent reported through a hook, in agentpty's words."""

    #: A conversation began or continued (start-up, resume, or a new one after /clear).
    CONVERSATION_STARTED = "conversation_started"
    #: The agent received a prompt (``prompt`` holds its text).
    PROMPT_SUBMITTED = "prompt_submitted"
    #: A tool is about to run (``tool`` and ``detail``, e.g. the command).
    TOOL_STARTED = "tool_started"
    TOOL_FINISHED = "tool_finished"
    #: The agent waits for the user: a permission or question prompt (``detail`` says what).
    NEEDS_INPUT = "needs_input"
    #: The turn ended; the agent waits at its prompt.
    TURN_ENDED = "turn_ended"
    #: The conversation's process is ending.
    CONVERSATION_ENDED = "conversation_ended"


@dataclass(frozen=True)
class AgentReport:
    """One hook report, translated from the agent's payload."""

    kind: ReportKind
    #: The conversation the report belongs to; a new one after /clear.
    conversation_id: str | None
    #: Why a conversation started, or a turn ended, in the agent's words (shown
    #: to people as is, e.g. Claude Code's "startup", "resume", "clear", "compact").
    source: str | None = None
    #: CONVERSATION_STARTED only: a new conversation (the agent's start-up, or
    #: after it was cleared), not one that goes on (resumed, compacted mid-turn).
    fresh: bool = False
    prompt: str | None = None
    tool: str | None = None
    #: Words for a person: the command a tool runs, the question asked.
    detail: str | None = None


class RunEventKind(StrEnum):
    """Events of a headless run, in agentpty's words."""

    #: The run's conversation is known (``conversation_id``).
    INIT = "init"
    #: Assistant or tool output (``text`` is None for tool work; ``delta``:
    #: one streamed fragment of the current assistant message).
    MESSAGE = "message"
    #: The run ended (``text``, ``cost_usd``, ``duration_ms``, ``is_error``).
    #: Without ``text`` the run's result is its last assistant message.
    RESULT = "result"


@dataclass(frozen=True)
class RunEvent:
    kind: RunEventKind
    conversation_id: str | None = None
    text: str | None = None
    cost_usd: float | None = None
    duration_ms: int | None = None
    is_error: bool = False
    #: MESSAGE only: ``text`` continues the previous message instead of replacing it.
    delta: bool = False


class ConversationSupport(Protocol):
    """How an agent keeps conversations that agentpty can resume."""

    #: True: agentpty chooses the id before the first start and passes it to
    #: the agent. False: the agent chooses it; agentpty learns it after start.
    chooses_id: bool

    def valid_id(self, value: str) -> bool:
        """True when ``value`` has the shape of this agent's conversation ids.

        Every id that enters agentpty (hook, headless event, discovery) is
        checked: ids end up in file patterns and command lines.
        """
        ...

    def new_id(self) -> str:
        """A fresh id for an agent that lets agentpty choose (``chooses_id``)."""
        ...

    def exists(self, conversation_id: str) -> bool:
        """True when the conversation holds at least one message (it can be resumed)."""
        ...

    def discover(self, cwd: str, since: datetime) -> str | None:
        """The id of the conversation an agent started in ``cwd`` after ``since``, if any.

        For agents that record their own ids (``chooses_id`` False); None otherwise.
        """
        ...


@dataclass(frozen=True)
class HookEndpoint:
    """Where an agent's hooks send their payloads.

    ``url`` is this server's; ``env_headers`` maps each header to the
    environment variable the agent takes its value from (its project id and
    that project's key), so that one settings file serves every project.
    ``command`` (argv) posts the payload on its stdin for the events an agent
    cannot post itself.
    """

    url: str
    env_headers: Mapping[str, str]
    command: Sequence[str] = ()


class HookSupport(Protocol):
    """An agent that reports its doings by posting them on events (its hooks)."""

    def install(self, data_dir: Path, endpoint: HookEndpoint) -> None:
        """Write whatever makes the agent post its events to ``endpoint`` (settings files)."""
        ...

    def parse(self, payload: Mapping[str, Any]) -> AgentReport | None:
        """Translate one hook payload; None for events agentpty does not use."""
        ...


class HeadlessSupport(Protocol):
    """An agent that runs one prompt without a terminal and prints JSON events."""

    def launch(self, *, cwd: str, prompt: str, conversation_id: str | None) -> Launch:
        """argv and env for one headless run (resuming ``conversation_id`` if it exists)."""
        ...

    def parse(self, event: Mapping[str, Any]) -> RunEvent | None:
        """Translate one JSON event of the agent's output; None for ones not used."""
        ...
