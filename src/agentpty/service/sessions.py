"""Terminal sessions of output projects: start or resume, attach, stop, type.

One live process per project (interactive or headless, never both). The
conversation id is chosen here and stored before the first start; the agent
profile decides between resuming and starting a conversation with that id.
When the agent says the stored conversation cannot be used, a fresh id is
stored, the old one stays in the history, and a new conversation starts, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentpty.agents.base import AgentProfile
from agentpty.domain.errors import Conflict, SessionStartError
from agentpty.domain.models import EventKind, OutputProject, SessionEvent, SessionState, new_id
from agentpty.service.tasks import OwnedTasks
from agentpty.store.base import Store
from agentpty.terminal.delivery import CommandQueue, DeliveryOutcome, DeliveryResult, ReadyPolicy
from agentpty.terminal.manager import SessionManager
from agentpty.terminal.session import SessionLimits, TerminalSession

__all__ = ["LiveSession", "SessionObserver", "SessionService"]

log = logging.getLogger(__name__)

#: Expiry markers count only in the agent's first output: later, the same
#: words may simply be part of the conversation.
EXPIRY_WINDOW_CHARS = 64 * 1024


@dataclass
class LiveSession:
    """A project's terminal session and what agentpty knows about its conversation."""

    project_id: str
    agent: str
    terminal: TerminalSession
    commands: CommandQueue
    agent_session_id: str | None
    resumed: bool
    #: Set when this start replaced an expired conversation (never replaced again).
    replaced: str | None = None
    expired: bool = False
    #: Resolved when the process has exited and its exit was handled: the
    #: session that took over (expired conversation), or None.
    successor: asyncio.Future[LiveSession | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve_successor(self, exit_handler: asyncio.Task[LiveSession | None]) -> None:
        """Resolve ``successor`` from the finished exit handler (None if it failed)."""
        failed = exit_handler.cancelled() or exit_handler.exception() is not None
        self.successor.set_result(None if failed else exit_handler.result())

    def status(self) -> dict[str, Any]:
        """Fields of the WebSocket ``status`` message."""
        return {
            "session_id": self.project_id,
            "state": str(self.terminal.state),
            "resumed": self.resumed,
            "agent": self.agent,
            "agent_session_id": self.agent_session_id,
            "pid": self.terminal.pid,
            "expired_agent_session_id": self.replaced,
        }


class SessionObserver(Protocol):
    """Told about every terminal session's start, exit and history events (h12: agent state)."""

    async def session_started(self, live: LiveSession) -> None: ...

    async def session_exited(self, live: LiveSession, exit_code: int | None) -> None: ...

    def session_event(self, project_id: str, kind: str, **detail: Any) -> None: ...


class SessionService:
    def __init__(
        self,
        store: Store,
        profiles: Mapping[str, AgentProfile],
        manager: SessionManager,
        *,
        idle_timeout: float | None,
        limits: SessionLimits,
        ready: ReadyPolicy,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.manager = manager
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.ready = ready
        self._live: dict[str, LiveSession] = {}
        self._headless: set[str] = set()
        self._tasks = OwnedTasks()
        self._server_url: str | None = None
        self._hook_secret = b""
        #: h12 call site: observers of session starts/exits/events (agent state, event stream).
        self.observers: list[SessionObserver] = []

    # -- hooks: how an agent reports back to this server

    def set_server_url(self, url: str, token: str) -> None:
        """Where agents' hooks reach this server; hook keys are derived from ``token``."""
        self._server_url = url
        self._hook_secret = token.encode()

    def hook_key(self, project_id: str) -> str:
        """A per-project key for hook reports: not the server token, useless elsewhere."""
        return hmac.new(self._hook_secret, project_id.encode(), hashlib.sha256).hexdigest()

    def hook_key_valid(self, project_id: str, key: str) -> bool:
        return bool(self._hook_secret) and hmac.compare_digest(self.hook_key(project_id), key)

    def hook_env(self, project_id: str) -> dict[str, str]:
        if self._server_url is None:
            return {}
        return {
            "AGENTPTY_PROJECT_ID": project_id,
            "AGENTPTY_HOOK_URL": f"{self._server_url}/api/hooks/claude/{project_id}"
            f"?key={self.hook_key(project_id)}",
        }

    # -- queries

    def current(self, project_id: str) -> LiveSession | None:
        """The project's latest session (alive or exited) in this server's lifetime."""
        return self._live.get(project_id)

    def live(self, project_id: str) -> LiveSession | None:
        live = self._live.get(project_id)
        return live if live is not None and live.terminal.alive else None

    def info(self, project_id: str) -> dict[str, Any]:
        """State of the project's session for ``GET .../session``."""
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
            "agent_session_id": live.agent_session_id,
            "rows": terminal.size[0],
            "cols": terminal.size[1],
        }

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
    ) -> tuple[LiveSession, bool]:
        """The project's live session, started (or resumed) if needed.

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

    async def _start(
        self,
        project: OutputProject,
        rows: int,
        cols: int,
        initial_prompt: str | None,
        replacing: str | None,
    ) -> LiveSession:
        profile = self.profiles.get(project.agent)
        if profile is None:
            raise SessionStartError(f"agent {project.agent!r} is not configured on this server")
        reason = profile.unavailable_reason()
        if reason is not None:
            raise SessionStartError(reason)
        session_id: str | None = None
        if profile.has_conversations:
            session_id, expired = await self.conversation_id(project.id, profile)
            replacing = replacing or expired
        launch = profile.launch(
            cwd=project.workspace_path, session_id=session_id, initial_prompt=initial_prompt
        )
        terminal = TerminalSession(
            project.id,
            launch.argv,
            cwd=project.workspace_path,
            env={**launch.env, **self.hook_env(project.id)},
            rows=rows,
            cols=cols,
            idle_timeout=self.idle_timeout,
            limits=self.limits,
        )
        policy = ReadyPolicy(
            marker=profile.ready_marker,
            busy_markers=profile.busy_markers,
            rejection_markers=profile.rejection_markers,
            quiet_time=self.ready.quiet_time,
            settle_time=self.ready.settle_time,
            timeout=self.ready.timeout,
            submit_pause=self.ready.submit_pause,
            bracketed_paste=profile.bracketed_paste,
        )
        live = LiveSession(
            project_id=project.id,
            agent=project.agent,
            terminal=terminal,
            commands=CommandQueue(terminal, policy),
            agent_session_id=session_id,
            resumed=launch.resumed,
            replaced=replacing,
        )
        if profile.expired_markers:
            self._watch_expiry(live, profile.expired_markers)
        if launch.resumed and session_id is not None:
            terminal.inject(f"\x1b[2m[resumed conversation {session_id[:8]}]\x1b[0m\r\n")
            await self.confirm_conversation(project.id, session_id)
        elif replacing is not None:
            terminal.inject(
                f"\x1b[2m[conversation {replacing[:8]} expired; "
                f"new conversation {(session_id or '')[:8]}]\x1b[0m\r\n"
            )

        def on_exit(code: int) -> None:
            task = self._tasks.spawn(self._on_exit(project, live, code), f"exit {project.id}")
            # Resolved from the task's end, not inside it: a task cancelled
            # before it ran (shutdown) never enters the coroutine.
            task.add_done_callback(live.resolve_successor)

        terminal.add_exit_callback(on_exit)
        try:
            terminal.start()
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
        await self.record_event(
            project.id,
            EventKind.STARTED,
            session_id,
            mode="resumed" if launch.resumed else "new",
            pid=terminal.pid,
        )
        return live

    async def conversation_id(
        self, project_id: str, profile: AgentProfile
    ) -> tuple[str, str | None]:
        """The id to start the project's conversation with, and the id it replaced.

        A fresh id is stored only if none is. If the conversation known to hold
        messages has vanished, starting its id again with ``--session-id``
        would silently begin an empty conversation: it is expired instead, and
        the second value is the old id.
        """
        session_id = await self.store.set_agent_session_id_if_unset(project_id, str(uuid.uuid4()))
        project = await self.store.get_project(project_id)
        if project.confirmed_session_id != session_id or profile.conversation_exists(session_id):
            return session_id, None
        new = await self._expire(
            project_id, session_id, "the conversation's transcript no longer exists"
        )
        return (session_id, None) if new is None else (new, session_id)

    async def _expire(self, project_id: str, old: str | None, reason: str) -> str | None:
        """Replace the expired id ``old`` by a fresh one (compare-and-set) and record it.

        Returns the new id, or None if the stored id changed meanwhile.
        """
        new = str(uuid.uuid4())
        if not await self.store.replace_agent_session_id(project_id, old, new):
            log.warning("project %s: conversation id changed meanwhile; not replacing", project_id)
            return None
        log.warning(
            "project %s: conversation %s expired (%s); new %s", project_id, old, reason, new
        )
        await self.record_event(
            project_id, EventKind.EXPIRED, new, previous_agent_session_id=old, reason=reason
        )
        return new

    async def confirm_conversation(self, project_id: str, session_id: str) -> None:
        """Remember that ``session_id``'s conversation holds messages."""
        project = await self.store.get_project(project_id)
        if project.confirmed_session_id != session_id and project.agent_session_id == session_id:
            await self.store.update_project(project_id, confirmed_session_id=session_id)

    def _watch_expiry(self, live: LiveSession, markers: tuple[str, ...]) -> None:
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
        self, project: OutputProject, live: LiveSession, code: int
    ) -> LiveSession | None:
        """Record the exit; return the session replacing an expired conversation, if any."""
        for observer in self.observers:  # h12 call site: agent state "exited"
            await observer.session_exited(live, code)
        await self.record_event(
            project.id,
            EventKind.EXITED,
            live.agent_session_id,
            exit_code=code,
            reason=live.terminal.stop_reason,
        )
        profile = self.profiles[project.agent]
        if live.expired and live.replaced is None and live.agent_session_id is not None:
            return await self._replace_expired(project, live)
        if live.agent_session_id is not None and profile.conversation_exists(live.agent_session_id):
            await self.confirm_conversation(project.id, live.agent_session_id)
        return None

    async def _replace_expired(
        self, project: OutputProject, live: LiveSession
    ) -> LiveSession | None:
        """Store a fresh conversation id and start a new conversation, once."""
        old = live.agent_session_id
        if await self._expire(project.id, old, "the agent could not resume it") is None:
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

    async def record_event(
        self, project_id: str, kind: EventKind, agent_session_id: str | None, **detail: Any
    ) -> None:
        try:
            await self.store.add_event(
                SessionEvent(
                    id=new_id(),
                    output_project_id=project_id,
                    kind=kind,
                    agent_session_id=agent_session_id,
                    detail=detail,
                )
            )
        except Exception:
            # History is best effort: a store outage must not break a terminal.
            log.exception("could not record %s event for project %s", kind, project_id)
        for observer in self.observers:  # h12 call site: the global event stream
            observer.session_event(
                project_id, str(kind), agent_session_id=agent_session_id, **detail
            )

    # -- id changes reported by the agent (hooks)

    async def report_hook(
        self, project_id: str, event: str | None, session_id: str, source: str | None
    ) -> bool:
        """An agent hook fired: follow id changes (``/clear``) and note used conversations.

        Returns True when the stored id changed.
        """
        changed = await self.report_agent_session_id(project_id, session_id, source or event)
        # A prompt was submitted (or /clear wrote a new transcript): the
        # conversation now holds messages and can expire.
        if event == "UserPromptSubmit" or source == "clear":
            await self.confirm_conversation(project_id, session_id)
        return changed

    async def report_agent_session_id(
        self, project_id: str, session_id: str, source: str | None
    ) -> bool:
        """The agent says its conversation is now ``session_id``; store it if it changed."""
        project = await self.store.get_project(project_id)
        old = project.agent_session_id
        if old == session_id:
            return False
        if not await self.store.replace_agent_session_id(project_id, old, session_id):
            return False
        live = self._live.get(project_id)
        if live is not None and live.agent_session_id == old:
            live.agent_session_id = session_id
        log.info("project %s: conversation id %s → %s (%s)", project_id, old, session_id, source)
        await self.record_event(
            project_id,
            EventKind.ID_CHANGED,
            session_id,
            previous_agent_session_id=old,
            source=source,
        )
        return True

    # -- control

    async def send(self, project: OutputProject, text: str, submit: bool) -> DeliveryResult:
        """Deliver ``text`` into the project's session, starting it if needed."""
        live, _ = await self.ensure(project)
        return await self.deliver(live, text, submit=submit)

    async def deliver(self, live: LiveSession, text: str, *, submit: bool = True) -> DeliveryResult:
        """Deliver ``text`` into ``live``, or into the session that replaced it."""
        result = await live.commands.deliver(text, submit=submit)
        return await self.redeliver_after_expiry(live, result, text, submit=submit)

    @staticmethod
    async def redeliver_after_expiry(
        live: LiveSession, result: DeliveryResult, text: str, *, submit: bool = True
    ) -> DeliveryResult:
        """Deliver ``text`` again into ``live``'s replacement if ``result`` says it exited.

        A process that exits because its conversation expired is replaced by
        a fresh one, once (``_replace_expired``): a command meant for it is
        typed into the replacement rather than reported lost.
        """
        if result.outcome is not DeliveryOutcome.EXITED:
            return result
        successor = await live.successor  # resolved once the exit has been handled
        if successor is None:
            return result
        return await successor.commands.deliver(text, submit=submit)

    async def stop(self, project_id: str) -> int | None:
        return await self.manager.stop(project_id)

    async def shutdown(self) -> None:
        await self.manager.shutdown()
        # Exit handlers record history; give them a moment before cancelling.
        await self._tasks.close(grace=5)
