"""The profile interface every agent implements, and shared helpers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentpty.agents.capabilities import (
        ConversationSupport,
        DeliveryHints,
        HeadlessSupport,
        HookSupport,
        ScreenMarkers,
    )

__all__ = [
    "SECRET_PREFIX",
    "AgentProfile",
    "InstalledCli",
    "Launch",
    "agent_env",
    "event_error_text",
]

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

    A profile declares capabilities (``agents/capabilities.py``); a missing
    capability is None, and the services never guess from an agent's name.
    Profiles build argv and env and read the agent's own files; they do no
    database or network I/O.
    """

    name: str
    #: Text on screen meaning ready, busy, refused, expired.
    markers: ScreenMarkers
    #: True when commands are typed as a bracketed paste (the agent understands it).
    bracketed_paste: bool
    #: True when its command line takes a first prompt that it submits itself
    #: (``launch(initial_prompt=...)``); False: a first command is typed.
    takes_initial_prompt: bool
    #: Quirks of its input box that typing must respect.
    delivery: DeliveryHints

    # Capabilities are read-only (properties, so a profile may declare its
    # own concrete classes): None means the agent lacks it.

    @property
    def conversations(self) -> ConversationSupport | None:
        """How its conversations are kept and resumed; None: nothing to resume (a shell)."""
        ...

    @property
    def hooks(self) -> HookSupport | None:
        """How it reports its doings; None: screen markers are all agentpty has."""
        ...

    @property
    def headless(self) -> HeadlessSupport | None:
        """How it runs one prompt without a terminal; None: it cannot."""
        ...

    def unavailable_reason(self) -> str | None:
        """None when the agent can run here, else what is missing and how to fix it."""
        ...

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        """argv and env to start the agent in ``cwd``.

        With ``conversation_id``: resume it if it exists, else start a
        conversation under it (agents that let agentpty choose the id) or a
        fresh one (agents that choose their own). Without: a fresh
        conversation, whose id the agent chooses.
        """
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


class InstalledCli:
    """What every profile of an installed agent CLI shares: its binary on the
    agents' PATH, the environment it inherits and extra arguments from the settings.

    Subclasses name the binary for people (``cli_name``) and say how to
    install it (``install_hint``).
    """

    cli_name = "agent CLI"
    install_hint = ""

    def __init__(self, env: Mapping[str, str], *, binary: str, extra_args: Sequence[str]) -> None:
        self._env = dict(env)
        self.binary = binary
        self.extra_args = list(extra_args)

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def executable(self) -> str | None:
        return shutil.which(self.binary, path=self._env.get("PATH", os.defpath))

    def unavailable_reason(self) -> str | None:
        if self.executable() is None:
            return f"the {self.cli_name} binary {self.binary!r} was not found: {self.install_hint}"
        return None


def event_error_text(event: Mapping[str, Any]) -> str | None:
    """The words of an error in a CLI's JSON event: ``error.message``, else ``message``."""
    error = event.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    message = event.get("message")
    return message if isinstance(message, str) else None
