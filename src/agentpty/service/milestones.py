"""Milestones: units of work typed into a project's one conversation.

Starting a milestone writes its context under the workspace and delivers a
command into the project's session: the new-project command when the
conversation has never had a message (passed to the agent as its initial
prompt when this start launches it), else the new-milestone command. Starts
of one project are serialised, so twenty concurrent starts are delivered one
at a time, in order, and exactly one of them is the new-project command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentpty.domain.errors import Conflict, InvalidInput, InvalidTransition
from agentpty.domain.models import Milestone, MilestoneStatus, OutputProject, new_id, utcnow
from agentpty.service.confirmed_delivery import Delivery
from agentpty.service.conversations import ConversationService
from agentpty.service.delivery import CommandDelivery
from agentpty.service.keyed import KeyedLocks
from agentpty.store.base import Store

__all__ = ["MAX_CONTEXT", "MilestoneService"]

log = logging.getLogger(__name__)

MAX_CONTEXT = 1024 * 1024
MAX_TITLE = 500
Status = MilestoneStatus

#: Allowed transitions: target status → statuses it may come from.
TRANSITIONS: dict[MilestoneStatus, frozenset[MilestoneStatus]] = {
    Status.IN_PROGRESS: frozenset({Status.PENDING}),
    Status.COMPLETED: frozenset({Status.IN_PROGRESS}),
    Status.FAILED: frozenset({Status.PENDING, Status.IN_PROGRESS}),
}


def context_relpath(milestone_id: str) -> str:
    return f".milestones/{milestone_id}/MILESTONE-CONTEXT.md"


class MilestoneService:
    def __init__(
        self,
        store: Store,
        commands: CommandDelivery,
        conversations: ConversationService,
        *,
        new_project_command: str,
        new_milestone_command: str,
        on_change: Callable[[Milestone, bool], None] = lambda _milestone, _deleted: None,
    ) -> None:
        self.store = store
        self.commands = commands
        self.conversations = conversations
        #: h12 call site: every stored change of a milestone goes on the event stream.
        self.on_change = on_change
        self.new_project_command = new_project_command
        self.new_milestone_command = new_milestone_command
        self._project_locks = KeyedLocks()

    async def create(self, output_project_id: str, title: str, context: str) -> Milestone:
        title = title.strip()
        if not title or len(title) > MAX_TITLE:
            raise InvalidInput(f"title must be 1..{MAX_TITLE} characters")
        if len(context.encode()) > MAX_CONTEXT:
            raise InvalidInput(f"context exceeds {MAX_CONTEXT} bytes; link to files instead")
        await self.store.get_project(output_project_id)
        milestone = Milestone(
            id=new_id(), output_project_id=output_project_id, title=title, context=context
        )
        created = await self.store.create_milestone(milestone)
        self.on_change(created, False)
        return created

    async def get(self, milestone_id: str) -> Milestone:
        return await self.store.get_milestone(milestone_id)

    async def list(
        self,
        output_project_id: str | None,
        status: MilestoneStatus | None,
        skip: int,
        limit: int,
    ) -> tuple[list[Milestone], int]:
        return await self.store.list_milestones(output_project_id, status, skip, limit)

    async def delete(self, milestone_id: str) -> None:
        doomed = await self.store.get_milestone(milestone_id)
        if not await self.store.delete_milestone(milestone_id, {Status.PENDING}):
            current = await self.store.get_milestone(milestone_id)
            raise InvalidTransition(
                f"milestone is {current.status}; only pending milestones can be deleted"
            )
        self.on_change(doomed, True)

    async def transition(self, milestone_id: str, status: MilestoneStatus) -> Milestone:
        """Complete or fail a milestone; ``InvalidTransition`` names the current status."""
        fields: dict[str, Any] = {}
        if status in (Status.COMPLETED, Status.FAILED):
            fields["completed_at"] = utcnow()
        allowed = TRANSITIONS[status]
        updated = await self.store.transition_milestone(milestone_id, allowed, status, **fields)
        if updated is None:
            current = await self.store.get_milestone(milestone_id)
            raise InvalidTransition(
                f"cannot move milestone from {current.status} to {status}; allowed from: "
                + ", ".join(sorted(str(s) for s in allowed))
            )
        self.on_change(updated, False)
        return updated

    # -- start: context file, then command delivery

    async def start(self, milestone_id: str) -> tuple[Milestone, Delivery]:
        """Deliver the milestone's command; it becomes in_progress only once delivered.

        If delivery fails, the milestone stays pending with ``status_reason``.
        """
        milestone = await self.store.get_milestone(milestone_id)
        self._check_startable(milestone)
        async with self._project_locks.hold(milestone.output_project_id):
            milestone = await self.store.get_milestone(milestone_id)
            self._check_startable(milestone)
            project = await self.store.get_project(milestone.output_project_id)
            relpath = self._write_context(project, milestone)
            first = await self._conversation_is_new(project)
            template = self.new_project_command if first else self.new_milestone_command
            command = template.format(
                context_path=relpath, milestone_id=milestone.id, title=milestone.title
            )
            log.info("project %s: milestone %s → %r", project.id, milestone.id, command)
            result = await self.commands.send_confirmed(project, command, as_initial_prompt=first)
            if not result.ok:
                updated = await self.store.update_milestone(
                    milestone.id,
                    status_reason=result.reason or str(result.outcome),
                    context_path=relpath,
                )
                self.on_change(updated, False)
                return updated, result
            started = await self.store.transition_milestone(
                milestone.id,
                {Status.PENDING},
                Status.IN_PROGRESS,
                started_at=utcnow(),
                context_path=relpath,
                status_reason=None,
            )
            if started is None:
                raise Conflict("the milestone changed while its command was being delivered")
            self.on_change(started, False)
            return started, result

    @staticmethod
    def _check_startable(milestone: Milestone) -> None:
        if milestone.status != Status.PENDING:
            raise InvalidTransition(
                f"cannot start milestone: it is {milestone.status}; only pending milestones start"
            )

    @staticmethod
    def _write_context(project: OutputProject, milestone: Milestone) -> str:
        root = Path(project.workspace_path)
        relpath = context_relpath(milestone.id)
        path = root / relpath
        try:
            (root / ".planning").mkdir(parents=True, exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {milestone.title}\n\n{milestone.context}\n", encoding="utf-8")
        except OSError as exc:
            raise Conflict(f"cannot write {path}: {exc.strerror}") from exc
        return relpath

    async def _conversation_is_new(self, project: OutputProject) -> bool:
        """True when the project's conversation has never had a message."""
        support = self.conversations.support(project.agent)
        if support is not None:
            fresh = await self.store.get_project(project.id)
            current = fresh.agent_session_id
            if current is None:
                return True
            # The agent's prompt hook may have told us before its transcript is on disk.
            return current != fresh.confirmed_session_id and not await asyncio.to_thread(
                support.exists, current
            )
        # No conversation to inspect (shell): new until a milestone has been started.
        started = [
            m
            for status in (Status.IN_PROGRESS, Status.COMPLETED, Status.FAILED)
            for m in (await self.store.list_milestones(project.id, status, 0, 1))[0]
        ]
        return not started
