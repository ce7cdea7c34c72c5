"""The store port: everything agentpty persists, whatever the database."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from agentpty.domain.models import (
    Milestone,
    MilestoneStatus,
    OutputProject,
    Run,
    SessionEvent,
)

__all__ = ["Store"]


class Store(Protocol):
    """Async persistence port implemented by the SQLite and MongoDB adapters.

    Every method raises ``NotFound`` for an unknown id (where it takes one) and
    ``StoreUnavailable`` when the database cannot be reached.
    """

    async def open(self) -> None:
        """Connect and create the schema or indexes if missing."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def health(self) -> None:
        """Return if the database answers and reads back intact, else raise ``StoreUnavailable``.

        For ``/healthz``: cheap enough to call on every probe of a small database.
        """

    # -- output projects
    async def create_project(self, project: OutputProject) -> OutputProject: ...

    async def get_project(self, project_id: str) -> OutputProject: ...

    async def list_projects(self, skip: int, limit: int) -> tuple[list[OutputProject], int]: ...

    async def delete_project(self, project_id: str) -> None: ...

    async def update_project(self, project_id: str, **fields: Any) -> OutputProject:
        """Set ``fields`` (and ``updated_at``); return the updated project."""
        ...

    async def set_agent_session_id_if_unset(self, project_id: str, conversation_id: str) -> str:
        """Store ``conversation_id`` only if the project has none; return the id now stored."""
        ...

    async def replace_agent_session_id(
        self, project_id: str, expected: str | None, new: str | None
    ) -> bool:
        """Compare-and-set: replace the id only if it still equals ``expected``."""
        ...

    # -- milestones
    async def create_milestone(self, milestone: Milestone) -> Milestone: ...

    async def get_milestone(self, milestone_id: str) -> Milestone: ...

    async def list_milestones(
        self,
        output_project_id: str | None,
        status: MilestoneStatus | None,
        skip: int,
        limit: int,
    ) -> tuple[list[Milestone], int]: ...

    async def count_milestones(self, output_project_id: str) -> dict[MilestoneStatus, int]: ...

    async def delete_milestone(
        self, milestone_id: str, only_if: Collection[MilestoneStatus]
    ) -> bool:
        """Delete only while the status is one of ``only_if``; False if it was not."""
        ...

    async def transition_milestone(
        self,
        milestone_id: str,
        only_if: Collection[MilestoneStatus],
        status: MilestoneStatus,
        **fields: Any,
    ) -> Milestone | None:
        """Atomically set ``status`` (and ``fields``) if the current status is in
        ``only_if``; return the updated milestone, or None if the status was not.
        """
        ...

    async def update_milestone(self, milestone_id: str, **fields: Any) -> Milestone: ...

    # -- headless runs
    async def create_run(self, run: Run) -> Run: ...

    async def get_run(self, run_id: str) -> Run: ...

    async def update_run(self, run_id: str, **fields: Any) -> Run: ...

    async def list_runs(self, output_project_id: str) -> list[Run]: ...

    # -- session history
    async def add_event(self, event: SessionEvent) -> SessionEvent: ...

    async def list_events(
        self, output_project_id: str, since: datetime | None = None
    ) -> list[SessionEvent]: ...
