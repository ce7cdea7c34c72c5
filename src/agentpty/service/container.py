"""Builds the services of one server from its settings (the composition root)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentpty.agents.base import AgentProfile, agent_env
from agentpty.agents.claude import ClaudeProfile
from agentpty.agents.codex import CodexProfile
from agentpty.agents.gemini import GeminiProfile
from agentpty.agents.shell import ShellProfile
from agentpty.config import Settings
from agentpty.domain.models import Milestone
from agentpty.host.client import HostClient
from agentpty.service.activity import ActivityObserver, ScreenPolicy
from agentpty.service.adoption import AdoptionService
from agentpty.service.agent_state import AgentStateService
from agentpty.service.conversations import ConversationService
from agentpty.service.delivery import CommandDelivery
from agentpty.service.event_bus import EventBus
from agentpty.service.history import History
from agentpty.service.hooks import HookService
from agentpty.service.milestones import MilestoneService
from agentpty.service.projects import ProjectService
from agentpty.service.runs import RunService
from agentpty.service.sessions import TerminalSessions
from agentpty.service.tasks import OwnedTasks
from agentpty.service.webhooks import WebhookSender
from agentpty.store import open_store
from agentpty.store.base import Store
from agentpty.terminal.delivery import ReadyPolicy
from agentpty.terminal.hosted import hosted_factory
from agentpty.terminal.manager import SessionManager
from agentpty.terminal.process import ProcessFactory, local_process
from agentpty.terminal.session import SessionLimits

__all__ = ["Services", "build_profiles", "screen_policies"]


def webhook_secret(settings: Settings) -> bytes:
    """The webhook signing key: the configured one, else ``<data_dir>/webhook-secret``."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    path = settings.data_dir / "webhook-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def build_profiles(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, AgentProfile]:
    """The agent profiles, inheriting ``environ`` (default: the server's) minus secrets.

    Their hooks are installed once the server listens (``Services.set_server_url``).
    """
    env = agent_env(os.environ if environ is None else environ, settings.env_drop)
    profiles: dict[str, AgentProfile] = {
        "shell": ShellProfile(env),
        "claude": ClaudeProfile(
            env, binary=settings.claude_bin, extra_args=settings.claude_extra_args
        ),
        # The profile always passes --no-daemon (docs/codex.md).
        "codex": CodexProfile(env, binary=settings.codex_bin, extra_args=settings.codex_extra_args),
        "gemini": GeminiProfile(
            env, binary=settings.gemini_bin, extra_args=settings.gemini_extra_args
        ),
    }
    return profiles


def screen_policies(
    profiles: Mapping[str, AgentProfile], quiet_time: float
) -> dict[str, ScreenPolicy]:
    """How each agent's state is read from its screen, from its declared capabilities (h12)."""
    return {
        name: ScreenPolicy(
            has_hooks=profile.hooks is not None,
            ready_marker=profile.markers.ready,
            busy_markers=profile.markers.busy,
            asking_markers=profile.markers.asking,
            quiet_time=quiet_time,
        )
        for name, profile in profiles.items()
    }


def publish_milestone(bus: EventBus, milestone: Milestone, deleted: bool) -> None:
    """A milestone was created, changed status or was deleted: tell the event stream."""
    bus.publish(
        "milestone",
        milestone.output_project_id,
        milestone_id=milestone.id,
        status="deleted" if deleted else str(milestone.status),
        title=milestone.title,
        status_reason=milestone.status_reason,
    )


@dataclass
class Services:
    settings: Settings
    store: Store
    manager: SessionManager
    projects: ProjectService
    history: History
    conversations: ConversationService
    hooks: HookService
    sessions: TerminalSessions
    commands: CommandDelivery
    milestones: MilestoneService
    runs: RunService
    #: h12: the event stream, the agent state of every project, and webhooks.
    bus: EventBus
    states: AgentStateService
    activity: ActivityObserver
    webhooks: WebhookSender
    #: The session host connection (None: agents are this server's children).
    host: HostClient | None = None
    tasks: OwnedTasks = field(default_factory=OwnedTasks)
    _opened: bool = False

    @classmethod
    def build(cls, settings: Settings, profiles: dict[str, AgentProfile] | None = None) -> Services:
        profiles = profiles if profiles is not None else build_profiles(settings)
        default_agent = settings.default_agent or (
            "claude" if profiles["claude"].unavailable_reason() is None else "shell"
        )
        store = open_store(settings.database_url)
        manager = SessionManager()
        host: HostClient | None = None
        factory: ProcessFactory = local_process
        if settings.session_host:
            host = HostClient(
                settings.run_dir,
                ring_size=settings.host_ring_size,
                cgroups=settings.session_cgroups,
                event_loop=settings.event_loop,
            )
            factory = hosted_factory(host)
        history = History(store)
        conversations = ConversationService(store, profiles, history)
        hooks = HookService(profiles, conversations)
        sessions = TerminalSessions(
            store,
            profiles,
            manager,
            conversations,
            hooks,
            history,
            idle_timeout=settings.idle_timeout,
            limits=SessionLimits(stop_grace=settings.stop_grace),
            ready=ReadyPolicy(
                quiet_time=settings.quiet_time,
                timeout=settings.ready_timeout,
                submit_pause=settings.submit_pause,
            ),
            process_factory=factory,
            detach_on_shutdown=host is not None and not settings.stop_on_shutdown,
        )
        bus = EventBus()
        states = AgentStateService(store, bus)
        activity = ActivityObserver(
            states, bus, screen_policies(profiles, settings.state_quiet_time)
        )
        sessions.observers.append(activity)  # h12: agent state from starts and exits
        history.add_listener(activity.session_event)  # h12: session events on the stream
        commands = CommandDelivery(
            sessions, conversations, states=states, confirm_timeout=settings.confirm_timeout
        )
        projects = ProjectService(store, profiles, settings.workspaces, default_agent)
        milestones = MilestoneService(
            store,
            commands,
            conversations,
            new_project_command=settings.new_project_command,
            new_milestone_command=settings.new_milestone_command,
            on_change=lambda milestone, deleted: publish_milestone(bus, milestone, deleted),
        )
        runs = RunService(store, sessions, conversations, hooks, history)

        async def project_webhook(project_id: str) -> str | None:
            return (await store.get_project(project_id)).webhook_url

        webhooks = WebhookSender(
            bus,
            webhook_secret(settings),
            global_url=settings.webhook_url,
            project_url=project_webhook,
            attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff,
        )
        return cls(
            settings,
            store,
            manager,
            projects,
            history,
            conversations,
            hooks,
            sessions,
            commands,
            milestones,
            runs,
            bus,
            states,
            activity,
            webhooks,
            host,
        )

    def set_server_url(self, url: str, token: str) -> None:
        """Where agents' hooks reach this server (known once it listens)."""
        self.hooks.set_server_url(url, token, self.settings.data_dir)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in a task owned by the services (cancelled on close, errors logged)."""
        self.tasks.spawn(coro, name)

    async def open(self) -> None:
        """Open the store, then adopt the sessions the session host kept. Idempotent."""
        await self.store.open()
        self.webhooks.start()
        if self.host is not None and not self._opened:
            self._opened = True
            await AdoptionService(self.store, self.sessions, self.history, self.host).adopt_all()

    async def close(self) -> None:
        """Stop every session, then the store. Idempotent."""
        await self.tasks.close()
        await self.commands.close()
        await self.runs.shutdown()
        await self.sessions.shutdown()
        await self.activity.close()
        await self.webhooks.close()
        if self.host is not None:
            self.host.close()
        await self.store.close()

    async def delete_project(self, project_id: str) -> None:
        """Stop the project's session and forget it; its files stay on disk."""
        await self.store.get_project(project_id)
        await self.sessions.stop(project_id)
        await self.store.delete_project(project_id)
        self.states.forget(project_id)
