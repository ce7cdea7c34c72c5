"""Headless runs: one prompt in the project's conversation, without a terminal.

For agents that declare ``HeadlessSupport``: the profile gives the argv and
translates each JSON event the agent prints into a ``RunEvent``. The agent's
own events are kept for late subscribers and streamed to live ones; the run
record keeps status, result text, cost and error. The ``INIT`` event carries
the conversation id: it is stored if none was (only if unset) and must equal
the stored one. While a run is in progress no interactive process of the
project may start, and vice versa.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from agentpty.agents.capabilities import HeadlessSupport, RunEvent, RunEventKind
from agentpty.domain.errors import InvalidInput
from agentpty.domain.models import EventKind, OutputProject, Run, RunStatus, new_id, utcnow
from agentpty.service.conversations import ConversationService
from agentpty.service.history import History
from agentpty.service.hooks import HookService
from agentpty.service.sessions import TerminalSessions
from agentpty.service.tasks import OwnedTasks
from agentpty.store.base import Store

__all__ = ["MAX_PROMPT", "RunService"]

log = logging.getLogger(__name__)

MAX_PROMPT = 256 * 1024
#: Events kept per run for subscribers that come late.
HISTORY = 2000
#: Longest NDJSON line accepted from the agent.
LINE_LIMIT = 16 * 1024 * 1024


class _RunFeed:
    """Events of one run: a bounded history plus a wake-up for live readers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        self.done = False
        self.changed = asyncio.Condition()

    async def publish(self, event: dict[str, Any] | None) -> None:
        async with self.changed:
            if event is None:
                self.done = True
            else:
                self.events.append(event)
                if len(self.events) > HISTORY:
                    del self.events[0]
                    self.dropped += 1
            self.changed.notify_all()


class RunService:
    def __init__(
        self,
        store: Store,
        sessions: TerminalSessions,
        conversations: ConversationService,
        hooks: HookService,
        history: History,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.conversations = conversations
        self.hooks = hooks
        self.history = history
        self._feeds: dict[str, _RunFeed] = {}
        self._tasks = OwnedTasks()

    async def start(self, project: OutputProject, prompt: str) -> Run:
        """Begin a headless run; ``Conflict`` while the project has a live session."""
        if not prompt.strip():
            raise InvalidInput("prompt must not be empty")
        if len(prompt.encode()) > MAX_PROMPT:
            raise InvalidInput(f"prompt exceeds {MAX_PROMPT} bytes")
        profile = self.sessions.profiles[project.agent]
        headless = profile.headless
        if headless is None:
            able = sorted(name for name, p in self.sessions.profiles.items() if p.headless)
            raise InvalidInput(
                f"agent {project.agent!r} has no headless mode; use a project with one of: "
                + (", ".join(able) or "(none configured)")
            )
        reason = profile.unavailable_reason()
        if reason is not None:
            raise InvalidInput(reason)
        self.sessions.claim_headless(project.id)
        try:
            conversation_id: str | None = None
            if profile.conversations is not None:
                # Same id rule as the terminal; a vanished conversation is expired too.
                conversation_id, _ = await self.conversations.starting_id(
                    project.id, profile.conversations
                )
            launch = headless.launch(
                cwd=project.workspace_path, prompt=prompt, conversation_id=conversation_id
            )
            run = await self.store.create_run(
                Run(
                    id=new_id(),
                    output_project_id=project.id,
                    prompt=prompt,
                    agent_session_id=conversation_id,
                )
            )
        except BaseException:
            self.sessions.release_headless(project.id)
            raise
        feed = self._feeds[run.id] = _RunFeed()
        env = {**launch.env, **self.hooks.env(project.id)}
        self._tasks.spawn(
            self._execute(project, run, headless, launch.argv, env, feed), f"run {run.id}"
        )
        return run

    async def _execute(
        self,
        project: OutputProject,
        run: Run,
        headless: HeadlessSupport,
        argv: list[str],
        env: dict[str, str],
        feed: _RunFeed,
    ) -> None:
        fields: dict[str, Any] = {}
        stderr = b""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=project.workspace_path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
            await self._record_start(project, run)
            assert process.stdout is not None and process.stderr is not None
            errors = asyncio.ensure_future(process.stderr.read())
            try:
                async for raw in process.stdout:
                    event = self._parse(raw)
                    if event is None:
                        continue
                    translated = headless.parse(event)
                    if translated is not None:
                        await self._apply(project, run, translated, fields)
                    await feed.publish(event)
                code = await process.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
            finally:
                stderr = await errors
            ok = code == 0 and not fields.get("is_error", False)
            fields["status"] = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
            if not ok and "error" not in fields:
                detail = stderr.decode(errors="replace").strip()[-2000:]
                fields["error"] = detail or f"the agent exited with code {code}"
            await self.history.record(
                project.id, EventKind.EXITED, run.agent_session_id, exit_code=code, run_id=run.id
            )
        except OSError as exc:
            fields.update(status=RunStatus.FAILED, error=f"cannot start the agent: {exc}")
        except asyncio.CancelledError:
            fields.update(status=RunStatus.FAILED, error="cancelled: the server shut down")
            raise
        finally:
            fields.pop("is_error", None)
            self.sessions.release_headless(project.id)
            try:
                await asyncio.shield(self.store.update_run(run.id, finished_at=utcnow(), **fields))
            finally:
                await feed.publish(None)

    async def _record_start(self, project: OutputProject, run: Run) -> None:
        await self.history.record(
            project.id, EventKind.STARTED, run.agent_session_id, mode="headless", run_id=run.id
        )

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.debug("non-JSON line from headless agent: %r", raw[:200])
            return None
        return event if isinstance(event, dict) else None

    async def _apply(
        self, project: OutputProject, run: Run, event: RunEvent, fields: dict[str, Any]
    ) -> None:
        """Update the run record's ``fields`` (and the stored conversation id) from ``event``."""
        reported = event.conversation_id
        support = self.conversations.support(project.agent)
        if reported is not None and (support is None or not support.valid_id(reported)):
            log.warning(
                "project %s: run %s reports a malformed id %r", project.id, run.id, reported[:80]
            )
            fields["error"] = f"the agent reported a malformed conversation id {reported[:80]!r}"
            reported = None
        if event.kind is RunEventKind.INIT and reported is not None:
            stored = await self.conversations.learn(project, reported, f"run {run.id}")
            if stored != reported:
                log.warning(
                    "project %s: run %s reports conversation %s, stored is %s",
                    project.id,
                    run.id,
                    reported,
                    stored,
                )
                fields["error"] = f"the agent reported conversation {reported}, expected {stored}"
            fields["agent_session_id"] = reported
        elif event.kind is RunEventKind.RESULT:
            fields["result"] = event.text
            fields["cost_usd"] = event.cost_usd
            fields["duration_ms"] = event.duration_ms
            fields["is_error"] = event.is_error
            if event.is_error:
                fields["error"] = event.text or "the agent reported an error"
            if reported is not None:
                await self.conversations.confirm(project.id, reported)

    async def events(self, run: Run) -> AsyncIterator[dict[str, Any]]:
        """The run's events so far, then live ones, until it ends."""
        feed = self._feeds.get(run.id)
        if feed is None:
            # Run of an earlier server process: only its record is left.
            yield {"type": "record", "run": run.model_dump(mode="json")}
            return
        index = 0  # absolute: events dropped from the history still count

        def more(after: int) -> Callable[[], bool]:
            return lambda: feed.done or feed.dropped + len(feed.events) > after

        while True:
            async with feed.changed:
                await feed.changed.wait_for(more(index))
                batch = feed.events[max(index - feed.dropped, 0) :]
                index = feed.dropped + len(feed.events)
                done = feed.done
            for event in batch:
                yield event
            if done:
                break
        yield {"type": "record", "run": (await self.store.get_run(run.id)).model_dump(mode="json")}

    async def shutdown(self) -> None:
        await self._tasks.close()
