"""Builds the services of one server from its settings (the composition root)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentpty.agents.base import AgentProfile, agent_env
from agentpty.agents.claude import ClaudeProfile
from agentpty.agents.claude_hooks import PROMPT_DIALOG_MARKERS, ClaudeHooks
from agentpty.agents.shell import ShellProfile
from agentpty.config import Settings
from agentpty.domain.models import Milestone
from agentpty.service.activity import ActivityObserver, ScreenPolicy
from agentpty.service.agent_state import AgentStateService
from agentpty.service.event_bus import EventBus
from agentpty.service.milestones import MilestoneService
from agentpty.service.projects import ProjectService
from agentpty.service.runs import RunService
from agentpty.service.sessions import SessionService
from agentpty.service.tasks import OwnedTasks
from agentpty.service.webhooks import WebhookSender
from agentpty.store import open_store
from agentpty.store.base import Store
from agentpty.terminal.delivery import ReadyPolicy
from agentpty.terminal.manager import SessionManager
from agentpty.terminal.session import SessionLimits

__all__ = ["Services", "build_profiles", "screen_policies", "write_hook_settings"]


def write_hook_settings(path: Path) -> Path:
    """Claude Code settings whose hooks report to this server (h12: see agents/claude_hooks.py).

    ``path``'s folder receives ``claude_hooks.SETTINGS_FILE``; its path is returned.
    """
    hooks = ClaudeHooks()
    hooks.install(path.parent, [sys.executable, "-m", "agentpty", "hook"])
    return hooks.settings_path(path.parent)


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
    """The agent profiles, inheriting ``environ`` (default: the server's) minus secrets."""
    env = agent_env(os.environ if environ is None else environ, settings.env_drop)
    return {
        "shell": ShellProfile(env),
        "claude": ClaudeProfile(
            env,
            binary=settings.claude_bin,
            extra_args=settings.claude_extra_args,
            settings_path=write_hook_settings(settings.data_dir / "claude-settings.json"),
        ),
    }


def screen_policies(
    profiles: Mapping[str, AgentProfile], quiet_time: float
) -> dict[str, ScreenPolicy]:
    """How each agent's state is read from its screen (h12; h11's capabilities will say)."""
    return {
        name: ScreenPolicy(
            has_hooks=name == "claude",
            ready_marker=profile.ready_marker,
            busy_markers=profile.busy_markers,
            asking_markers=PROMPT_DIALOG_MARKERS if name == "claude" else (),
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
    sessions: SessionService
    milestones: MilestoneService
    runs: RunService
    #: h12: the event stream, the agent state of every project, its hooks and webhooks.
    bus: EventBus
    states: AgentStateService
    activity: ActivityObserver
    claude_hooks: ClaudeHooks
    webhooks: WebhookSender
    tasks: OwnedTasks = field(default_factory=OwnedTasks)

    @classmethod
    def build(cls, settings: Settings, profiles: dict[str, AgentProfile] | None = None) -> Services:
        profiles = profiles if profiles is not None else build_profiles(settings)
        default_agent = settings.default_agent or (
            "claude" if profiles["claude"].unavailable_reason() is None else "shell"
        )
        store = open_store(settings.database_url)
        manager = SessionManager()
        sessions = SessionService(
            store,
            profiles,
            manager,
            idle_timeout=settings.idle_timeout,
            limits=SessionLimits(stop_grace=settings.stop_grace),
            ready=ReadyPolicy(
                quiet_time=settings.quiet_time,
                timeout=settings.ready_timeout,
                submit_pause=settings.submit_pause,
            ),
        )
        bus = EventBus()
        states = AgentStateService(store, bus)
        activity = ActivityObserver(
            states, bus, screen_policies(profiles, settings.state_quiet_time)
        )
        sessions.observers.append(activity)
        projects = ProjectService(store, profiles, settings.workspaces, default_agent)
        milestones = MilestoneService(
            store,
            sessions,
            new_project_command=settings.new_project_command,
            new_milestone_command=settings.new_milestone_command,
            states=states,
            has_hooks=activity.has_hooks,
            confirm_timeout=settings.confirm_timeout,
            on_change=lambda milestone, deleted: publish_milestone(bus, milestone, deleted),
        )
        runs = RunService(store, sessions)

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
            sessions,
            milestones,
            runs,
            bus,
            states,
            activity,
            ClaudeHooks(),
            webhooks,
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in a task owned by the services (cancelled on close, errors logged)."""
        self.tasks.spawn(coro, name)

    async def open(self) -> None:
        await self.store.open()
        self.webhooks.start()

    async def close(self) -> None:
        """Stop every session, then the store. Idempotent."""
        await self.tasks.close()
        await self.runs.shutdown()
        await self.sessions.shutdown()
        await self.activity.close()
        await self.webhooks.close()
        await self.store.close()

    async def delete_project(self, project_id: str) -> None:
        """Stop the project's session and forget it; its files stay on disk."""
        await self.store.get_project(project_id)
        await self.sessions.stop(project_id)
        await self.store.delete_project(project_id)
        self.states.forget(project_id)
