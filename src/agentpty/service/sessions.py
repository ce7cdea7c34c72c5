"""Terminal sessions of output projects: start or resume, the live registry, stop.

One live process per project (interactive or headless, never both). The
conversation service says which conversation a start continues; the agent
profile turns that into argv. When the agent says the stored conversation
cannot be used, the conversation is expired (the old id stays in the
history) and a fresh one starts, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentpty.agents.base import AgentProfile
from agentpty.domain.errors import Conflict, SessionStartError
from agentpty.domain.models import EventKind, OutputProject, SessionState
from agentpty.service.conversations import ConversationService
from agentpty.service.history import History
from agentpty.service.hooks import HookService
from agentpty.service.tasks import OwnedTasks
from agentpty.store.base import Store
from agentpty.terminal.delivery import CommandQueue, ReadyPolicy
from agentpty.terminal.manager import SessionManager
from agentpty.terminal.process import ProcessFactory, local_process
from agentpty.terminal.session import SessionLimits, TerminalSession

__all__ = ["LiveTerminal", "SessionObserver", "TerminalSessions"]

log = logging.getLogger(__name__)

#: Expiry markers count only in the agent's first output: later, the same
#: words may simply be part of the conversation.
EXPIRY_WINDOW_CHARS = 64 * 1024


@dataclass
class LiveTerminal:
    """A project's terminal session and what agentpty knows about its conversation."""

    project_id: str
    agent: str
    terminal: TerminalSession
    commands: CommandQueue
    #: The conversation this process continues (None: the agent has not told yet).
    conversation_id: str | None
    resumed: bool
    #: Set when this start replaced an expired conversation (never replaced again).
    replaced: str | None = None
    expired: bool = False
    #: Resolved when the process has exited and its exit was handled: the
    #: terminal session that took over (expired conversation), or None.
    successor: asyncio.Future[LiveTerminal | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve_successor(self, exit_handler: asyncio.Task[LiveTerminal | None]) -> None:
        """Resolve ``successor`` from the finished exit handler (None if it failed)."""
        failed = exit_handler.cancelled() or exit_handler.exception() is not None
        self.successor.set_result(None if failed else exit_handler.result())

    def status(self) -> dict[str, Any]:
        """Fields of the WebSocket ``status`` message."""
        return {
            "project_id": self.project_id,
            # Deprecated alias of project_id, kept for one release.
            "session_id": self.project_id,
            "state": str(self.terminal.state),
            "resumed": self.resumed,
            "agent": self.agent,
            "agent_session_id": self.conversation_id,
            "pid": self.terminal.pid,
            "expired_agent_session_id": self.replaced,
        }


class SessionObserver(Protocol):
    """Told about every terminal session's start and exit (h12: agent state)."""

    async def session_started(self, live: LiveTerminal) -> None: ...

    async def session_exited(self, live: LiveTerminal, exit_code: int | None) -> None: ...


class TerminalSessions:
    """The live terminal session of each project, started on demand."""

    def __init__(
        self,
        store: Store,
        profiles: Mapping[str, AgentProfile],
        manager: SessionManager,
        conversations: ConversationService,
        hooks: HookService,
        history: History,
        *,
        idle_timeout: float | None,
        limits: SessionLimits,
        ready: ReadyPolicy,
        process_factory: ProcessFactory = local_process,
        detach_on_shutdown: bool = False,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.manager = manager
        self.conversations = conversations
        self.hooks = hooks
        self.history = history
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.ready = ready
        #: Where agents run (in-process, or in the session host) and whether
        #: shutdown leaves them running.
        self.process_factory = process_factory
        self.detach_on_shutdown = detach_on_shutdown
        self._live: dict[str, LiveTerminal] = {}
        self._headless: set[str] = set()
        self._tasks = OwnedTasks()
        conversations.add_listener(self._conversation_changed)
        #: h12 call site: observers of terminal starts and exits (agent state).
        self.observers: list[SessionObserver] = []

    # -- queries

    def current(self, project_id: str) -> LiveTerminal | None:
        """The project's latest terminal session (alive or exited) in this server's lifetime."""
        return self._live.get(project_id)

    def live(self, project_id: str) -> LiveTerminal | None:
        live = self._live.get(project_id)
        return live if live is not None and live.terminal.alive else None

    def info(self, project_id: str) -> dict[str, Any]:
        """State of the project's terminal session for ``GET .../session``."""
        live = self._live.get(project_id)
        if live is None:
            state = SessionState.STARTING if self.manager.is_starting(project_id) else None
            return {
                "state": str(state or SessionState.NONE),
                "pid": None,
                "clients": 0,
                "started_at": None,
                "exit_code": None,
                "resumed": False,
            }
        terminal = live.terminal
        return {
            "state": str(terminal.state),
            "pid": terminal.pid,
            "clients": terminal.clients,
            "started_at": terminal.started_at.isoformat(),
            "exit_code": terminal.exit_code,
            "resumed": live.resumed,
            "agent_session_id": live.conversation_id,
            "rows": terminal.size[0],
            "cols": terminal.size[1],
            "containment": terminal.containment,
        }

    def _conversation_changed(self, project_id: str, old: str | None, new: str | None) -> None:
        live = self._live.get(project_id)
        if live is not None and live.conversation_id == old:
            live.conversation_id = new

    # -- one writer per conversation

    def claim_headless(self, project_id: str) -> None:
        """Reserve the conversation for a headless run; ``Conflict`` if anything holds it."""
        if self.live(project_id) is not None or self.manager.is_starting(project_id):
            raise Conflict(
                "an interactive session of this project is running; stop it "
                "(DELETE .../session) before a headless run: one writer per conversation"
            )
        if project_id in self._headless:
            raise Conflict("a headless run of this project is already in progress")
        self._headless.add(project_id)

    def release_headless(self, project_id: str) -> None:
        self._headless.discard(project_id)

    # -- start

    async def ensure(
        self,
        project: OutputProject,
        *,
        rows: int = 24,
        cols: int = 80,
        initial_prompt: str | None = None,
    ) -> tuple[LiveTerminal, bool]:
        """The project's live terminal session, started (or resumed) if needed.

        Returns the session and whether this call started it. ``initial_prompt``
        is only used when this call starts the process.
        """
        if project.id in self._headless:
            raise Conflict(
                "a headless run of this project is in progress; wait for it to finish: "
                "one writer per conversation"
            )

        async def factory() -> TerminalSession:
            live = await self._start(project, rows, cols, initial_prompt, replacing=None)
            return live.terminal

        terminal, started = await self.manager.ensure(project.id, factory)
        live = self._live[project.id]
        assert live.terminal is terminal
        return live, started

    def profile(self, agent: str) -> AgentProfile:
        """The agent's profile, if configured and available; ``SessionStartError`` if not."""
        profile = self.profiles.get(agent)
        if profile is None:
            raise SessionStartError(f"agent {agent!r} is not configured on this server")
        reason = profile.unavailable_reason()
        if reason is not None:
            raise SessionStartError(reason)
        return profile

    async def _start(
        self,
        project: OutputProject,
        rows: int,
        cols: int,
        initial_prompt: str | None,
        replacing: str | None,
    ) -> LiveTerminal:
        profile = self.profile(project.agent)
        conversation_id: str | None = None
        if profile.conversations is not None:
            conversation_id, expired = await self.conversations.starting_id(
                project.id, profile.conversations
            )
            replacing = replacing or expired
        launch = profile.launch(
            cwd=project.workspace_path,
            conversation_id=conversation_id,
            initial_prompt=initial_prompt,
        )
        terminal = TerminalSession(
            project.id,
            launch.argv,
            cwd=project.workspace_path,
            env={**launch.env, **self.hooks.env(project.id)},
            rows=rows,
            cols=cols,
            idle_timeout=self.idle_timeout,
            limits=self.limits,
            process_factory=self.process_factory,
            meta={"agent": project.agent, "resumed": launch.resumed},
        )
        live = LiveTerminal(
            project_id=project.id,
            agent=project.agent,
            terminal=terminal,
            commands=CommandQueue(terminal, self._policy(profile)),
            conversation_id=conversation_id,
            resumed=launch.resumed,
            replaced=replacing,
        )
        if profile.markers.expired:
            self._watch_expiry(live, profile.markers.expired)
        if launch.resumed and conversation_id is not None:
            terminal.inject(f"\x1b[2m[resumed conversation {conversation_id[:8]}]\x1b[0m\r\n")
            await self.conversations.confirm(project.id, conversation_id)
        elif replacing is not None:
            terminal.inject(
                f"\x1b[2m[conversation {replacing[:8]} expired; "
                f"new conversation {(conversation_id or '')[:8]}]\x1b[0m\r\n"
            )

        self._watch_exit(project, live)
        try:
            await terminal.launch()
        except Exception:
            live.successor.set_result(None)
            raise
        self._live[project.id] = live
        for observer in self.observers:  # h12 call site: agent state "starting"
            await observer.session_started(live)
        log.info(
            "project %s: started %s (pid %s, %s)",
            project.id,
            project.agent,
            terminal.pid,
            "resumed" if launch.resumed else "new",
        )
        await self.history.record(
            project.id,
            EventKind.STARTED,
            conversation_id,
            mode="resumed" if launch.resumed else "new",
            pid=terminal.pid,
        )
        return live

    def _policy(self, profile: AgentProfile) -> ReadyPolicy:
        return ReadyPolicy(
            marker=profile.markers.ready,
            busy_markers=profile.markers.busy,
            rejection_markers=profile.markers.refusal,
            quiet_time=self.ready.quiet_time,
            settle_time=self.ready.settle_time,
            timeout=max(self.ready.timeout, profile.delivery.min_ready_timeout),
            submit_pause=self.ready.submit_pause,
            bracketed_paste=profile.bracketed_paste,
            clear_refused=profile.delivery.clear_refused,
            confirm_submit=profile.delivery.confirm_submit,
            confirm_window=profile.delivery.confirm_window,
            paste_echo=profile.delivery.paste_echo,
            resubmit_lost_enter=profile.delivery.resubmit_lost_enter,
            type_slash_commands=profile.delivery.type_slash_commands,
            typed_over=profile.delivery.typed_over,
        )

    def _watch_exit(self, project: OutputProject, live: LiveTerminal) -> None:
        def on_exit(code: int) -> None:
            task = self._tasks.spawn(self._on_exit(project, live, code), f"exit {project.id}")
            # Resolved from the task's end, not inside it: a task cancelled
            # before it ran (shutdown) never enters the coroutine.
            task.add_done_callback(live.resolve_successor)

        live.terminal.add_exit_callback(on_exit)

    # -- adoption: sessions that outlived a server (driven by service/adoption.py)

    def adopted(
        self, project: OutputProject, terminal: TerminalSession, resumed: bool
    ) -> LiveTerminal:
        """Track ``terminal``, a running session adopted from the session host.

        Register before ``terminal.adopt()``: an exit during adoption is then handled.
        """
        profile = self.profiles.get(project.agent)
        if profile is None:
            raise SessionStartError(f"agent {project.agent!r} is not configured on this server")
        live = LiveTerminal(
            project_id=project.id,
            agent=project.agent,
            terminal=terminal,
            commands=CommandQueue(terminal, self._policy(profile)),
            conversation_id=project.agent_session_id,
            resumed=resumed,
        )
        self._watch_exit(project, live)
        self._live[project.id] = live
        self.manager.adopt(project.id, terminal)
        return live

    def _watch_expiry(self, live: LiveTerminal, markers: tuple[str, ...]) -> None:
        seen = ""

        def on_output(text: str) -> None:
            nonlocal seen
            seen += text
            if any(marker in seen for marker in markers):
                live.expired = True
                remove()
            elif len(seen) > EXPIRY_WINDOW_CHARS:
                remove()

        remove = live.terminal.add_output_listener(on_output)

    async def _on_exit(
        self, project: OutputProject, live: LiveTerminal, code: int
    ) -> LiveTerminal | None:
        """Record the exit; return the terminal session replacing an expired conversation."""
        for observer in self.observers:  # h12 call site: agent state "exited"
            await observer.session_exited(live, code)
        await self.history.record(
            project.id,
            EventKind.EXITED,
            live.conversation_id,
            exit_code=code,
            reason=live.terminal.stop_reason,
        )
        support = self.conversations.support(project.agent)
        if support is None:
            return None
        if live.expired and live.replaced is None:
            return await self._replace_expired(project, live)
        if live.conversation_id is None:
            # An agent that chooses its own id and never reported it: read its files.
            await self.conversations.discover(project, live.terminal.started_at)
        if live.conversation_id is not None:
            await self.conversations.confirm_if_exists(project, live.conversation_id)
        return None

    async def _replace_expired(
        self, project: OutputProject, live: LiveTerminal
    ) -> LiveTerminal | None:
        """Expire the conversation and start a fresh one, once."""
        old = live.conversation_id
        support = self.conversations.support(project.agent)
        if old is None or support is None:
            return None
        if not await self.conversations.expire(
            project.id, support, old, "the agent could not resume it"
        ):
            return None
        fresh = await self.store.get_project(project.id)
        rows, cols = live.terminal.size

        async def factory() -> TerminalSession:
            successor = await self._start(fresh, rows, cols, None, replacing=old)
            return successor.terminal

        try:
            await self.manager.ensure(project.id, factory)
        except SessionStartError:
            log.exception("project %s: could not start a fresh conversation", project.id)
            return None
        return self._live[project.id]

    # -- control

    async def stop(self, project_id: str) -> int | None:
        return await self.manager.stop(project_id)

    async def shutdown(self) -> None:
        await self.manager.shutdown(detach=self.detach_on_shutdown)
        # Exit handlers record history; give them a moment before cancelling.
        await self._tasks.close(grace=5)
