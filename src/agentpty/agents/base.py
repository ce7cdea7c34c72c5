"""The profile interface every agent implements, and shared helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["SECRET_PREFIX", "AgentProfile", "Launch", "agent_env"]

#: agentpty's own settings (the token, a database URL with its password, ...)
#: are never inherited by an agent: every variable with this prefix is dropped.
SECRET_PREFIX = "AGENTPTY_"


@dataclass(frozen=True)
class Launch:
    """How to start one agent process."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: True when this start continues an existing conversation.
    resumed: bool = False


class AgentProfile(Protocol):
    """What agentpty needs to know about one agent CLI.

    Profiles build argv and env and read the agent's own files; they do no
    database or network I/O.
    """

    name: str
    #: Text on screen that means the agent waits for input (None: use output quiet time).
    ready_marker: str | None
    #: True when the agent keeps a conversation under an id we choose.
    has_conversations: bool
    #: Substrings of early output meaning the stored conversation id cannot be used.
    expired_markers: tuple[str, ...]
    #: Text on screen meaning "busy" even while ``ready_marker`` shows.
    busy_markers: tuple[str, ...]
    #: Output after a submitted command meaning it was refused.
    rejection_markers: tuple[str, ...]
    #: True when commands are typed as a bracketed paste (the agent understands it).
    bracketed_paste: bool

    def unavailable_reason(self) -> str | None:
        """None when the agent can run here, else what is missing and how to fix it."""
        ...

    def conversation_exists(self, session_id: str) -> bool:
        """True when a conversation with this id has at least one message."""
        ...

    def valid_conversation_id(self, value: str) -> bool:
        """True when ``value`` has the form of this agent's conversation ids.

        Ids reported by the agent (hooks, headless events) are checked with
        this before they are stored: they end up in file patterns and argv.
        """
        ...

    def launch(
        self, *, cwd: str, session_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        """argv and env to start (or resume) the conversation ``session_id`` in ``cwd``."""
        ...


def agent_env(base: Mapping[str, str], drop: Iterable[str] = ()) -> dict[str, str]:
    """The server's environment minus agentpty's own variables and the names in ``drop``."""
    dropped = set(drop)
    env = {
        name: value
        for name, value in base.items()
        if name not in dropped and not name.startswith(SECRET_PREFIX)
    }
    env["TERM"] = "xterm-256color"
    env.setdefault("LANG", "C.UTF-8")
    return env
