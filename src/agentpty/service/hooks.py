"""How agents' hooks reach this server, and what a hook report changes.

An agent with hooks (``HookSupport``) posts its events to ``/api/hooks``
itself (``HookEndpoint``), naming its project and that project's key in
headers it fills from its environment. The key is an HMAC of the server
token and the project id: the agent never holds the API token, and a key is
useless for another project. For events whose hooks can only run a command,
the agent runs ``agentpty hook``, which posts to ``AGENTPTY_HOOK_URL`` (the
key in the URL). The profile translates the payload into an ``AgentReport``; the
conversation service applies it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentpty.agents.base import AgentProfile
from agentpty.agents.capabilities import AgentReport, HookEndpoint
from agentpty.domain.errors import InvalidInput
from agentpty.domain.models import OutputProject
from agentpty.service.conversations import ConversationService

__all__ = ["HOOK_COMMAND", "KEY_HEADER", "PROJECT_HEADER", "HookService", "ReportListener"]

log = logging.getLogger(__name__)

#: What an agent whose hooks run commands runs on its events (after the Python interpreter).
HOOK_COMMAND = ("-m", "agentpty", "hook")
#: Headers of a hook post naming the project and its key (``HookEndpoint``).
PROJECT_HEADER = "X-Agentpty-Project"
KEY_HEADER = "X-Agentpty-Hook-Key"
#: Environment variables of an agent process the headers are filled from.
_HEADER_ENV = {PROJECT_HEADER: "AGENTPTY_PROJECT_ID", KEY_HEADER: "AGENTPTY_HOOK_KEY"}

#: Called with every report applied (e.g. by whatever tracks what the agent is doing).
ReportListener = Callable[[OutputProject, AgentReport], None]


class HookService:
    def __init__(
        self, profiles: Mapping[str, AgentProfile], conversations: ConversationService
    ) -> None:
        self.profiles = profiles
        self.conversations = conversations
        self._server_url: str | None = None
        self._secret = b""
        self._listeners: list[ReportListener] = []

    def add_listener(self, listener: ReportListener) -> None:
        """Hear every report after the conversation service applied it."""
        self._listeners.append(listener)

    def set_server_url(self, url: str, token: str, data_dir: Path) -> None:
        """Where agents' hooks reach this server; hook keys are derived from ``token``.

        Installs every profile's hooks (their settings files under ``data_dir``):
        only now is the URL known.
        """
        self._server_url = url
        self._secret = token.encode()
        endpoint = HookEndpoint(f"{url}/api/hooks", _HEADER_ENV, (sys.executable, *HOOK_COMMAND))
        for profile in self.profiles.values():
            if profile.hooks is not None:
                profile.hooks.install(data_dir, endpoint)

    def key(self, project_id: str) -> str:
        """A per-project key for hook reports: not the server token, useless elsewhere."""
        return hmac.new(
            self._secret, project_id.encode(errors="surrogatepass"), hashlib.sha256
        ).hexdigest()

    def key_valid(self, project_id: str, key: str) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (any client can send them).
        given = key.encode(errors="surrogatepass")
        return bool(self._secret) and hmac.compare_digest(
            self.key(project_id).encode(errors="surrogatepass"), given
        )

    def env(self, project_id: str) -> dict[str, str]:
        """Environment for an agent process of ``project_id`` (empty before the server listens)."""
        if self._server_url is None:
            return {}
        key = self.key(project_id)
        return {
            _HEADER_ENV[PROJECT_HEADER]: project_id,
            _HEADER_ENV[KEY_HEADER]: key,
            "AGENTPTY_HOOK_URL": f"{self._server_url}/api/hooks/{project_id}?key={key}",
        }

    async def receive(
        self, project: OutputProject, payload: Mapping[str, Any]
    ) -> tuple[AgentReport | None, bool]:
        """Translate and apply one hook payload of ``project``'s agent.

        Returns the report (None: an event agentpty does not use) and whether
        the stored conversation id changed. ``InvalidInput`` when the agent
        has no hooks or the payload names an id of the wrong shape.
        """
        profile = self.profiles.get(project.agent)
        if profile is None or profile.hooks is None:
            raise InvalidInput(f"agent {project.agent!r} does not report through hooks")
        report = profile.hooks.parse(payload)
        if report is None:
            return None, False
        log.info(
            "project %s: hook %s (source %s) conversation %s",
            project.id,
            report.kind,
            report.source,
            report.conversation_id,
        )
        changed = await self.conversations.follow(project, report)
        for listener in self._listeners:
            listener(project, report)
        return report, changed
