"""The ``shell`` profile: an interactive shell, no conversation to resume."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from agentpty.agents.base import Launch
from agentpty.agents.capabilities import (
    ConversationSupport,
    DeliveryHints,
    HeadlessSupport,
    HookSupport,
    ScreenMarkers,
)

__all__ = ["ShellProfile"]


class ShellProfile:
    """``$SHELL`` (else /bin/bash), interactive. Commands are typed as plain lines.

    Declares markers only (none: output quiet for a while means ready); no
    conversations, hooks or headless runs.
    """

    name = "shell"
    markers = ScreenMarkers()
    # Commands are plain lines: a program reading the terminal may not know pastes.
    bracketed_paste = False
    takes_initial_prompt = False
    delivery = DeliveryHints()
    conversations: ConversationSupport | None = None
    hooks: HookSupport | None = None
    headless: HeadlessSupport | None = None

    def __init__(
        self,
        env: Mapping[str, str],
        shell: str | None = None,
        args: Sequence[str] = ("-i",),
    ) -> None:
        self._env = dict(env)
        self.shell = shell or env.get("SHELL") or "/bin/bash"
        self.args = list(args)

    def unavailable_reason(self) -> str | None:
        if shutil.which(self.shell) is None and not os.access(self.shell, os.X_OK):
            return f"shell {self.shell!r} not found; set SHELL to an installed shell"
        return None

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        return Launch(argv=[self.shell, *self.args], env=dict(self._env))
