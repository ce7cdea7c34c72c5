"""Embedded SQLite adapter: the default store, a file in the data dir.

Every entity is one row: indexed columns for what queries filter or sort on,
and the whole model as JSON in ``doc``. All access goes through one
connection owned by a single worker thread, so each method is atomic (a
compare-and-set is a read and a write on that thread) and the event loop never
blocks on disk. WAL lets other processes read while we write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agentpty.domain.errors import Conflict, NotFound, StoreUnavailable
from agentpty.domain.models import (
    Milestone,
    MilestoneStatus,
    OutputProject,
    Run,
    SessionEvent,
    utcnow,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_TABLES = ("projects", "milestones", "runs", "events")
_SCHEMA = "\n".join(
    f"""
    CREATE TABLE IF NOT EXISTS {table} (
        id TEXT PRIMARY KEY,
        project_id TEXT,
        status TEXT,
        created_at TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {table}_project ON {table} (project_id, created_at);
    """
    for table in _TABLES
)


class SqliteStore:
    """``Store`` on an SQLite file (created with its folder on first open)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentpty-sqlite")
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def health(self) -> None:
        # quick_check reads every page of every table and index (not the
        # cross-checks of integrity_check): a corrupt page anywhere shows.
        problems = await self._run(self._health_sync)
        if problems:
            raise StoreUnavailable(
                f"SQLite database {self.path} is damaged ({'; '.join(problems[:3])}); "
                "restore it from a backup or move it away to start empty"
            )

    def _health_sync(self) -> list[str]:
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        return [str(row[0]) for row in rows if row[0] != "ok"]

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreUnavailable("the store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"already stored: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite error on {self.path}: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not open"
        return self._conn

    def _insert(self, table: str, model: BaseModel, project_id: str | None) -> None:
        status = getattr(model, "status", None)
        self._db.execute(
            f"INSERT INTO {table} (id, project_id, status, created_at, doc) VALUES (?,?,?,?,?)",
            (
                getattr(model, "id"),  # noqa: B009 - every entity has an id
                project_id,
                None if status is None else str(status),
                getattr(model, "created_at").isoformat(),  # noqa: B009
                model.model_dump_json(),
            ),
        )

    def _load(self, table: str, cls: type[M], entity_id: str) -> M:
        row = self._db.execute(f"SELECT doc FROM {table} WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            raise NotFound(f"no {table[:-1]} with id {entity_id!r}")
        return cls.model_validate_json(row[0])

    def _save(self, table: str, model: BaseModel) -> None:
        status = getattr(model, "status", None)
        entity_id = getattr(model, "id")  # noqa: B009 - every entity has an id
        self._db.execute(
            f"UPDATE {table} SET status = ?, doc = ? WHERE id = ?",
            (None if status is None else str(status), model.model_dump_json(), entity_id),
        )

    def _update(self, table: str, cls: type[M], entity_id: str, fields: dict[str, Any]) -> M:
        with self._db:
            model = self._load(table, cls, entity_id).model_copy(update=fields)
            self._save(table, model)
        return model

    def _select(
        self, table: str, cls: type[M], where: dict[str, Any], skip: int, limit: int | None
    ) -> tuple[list[M], int]:
        clause = " AND ".join(f"{column} = ?" for column in where) or "1"
        params = list(where.values())
        total = self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE {clause}", params).fetchone()
        rows = self._db.execute(
            f"SELECT doc FROM {table} WHERE {clause} ORDER BY created_at, rowid LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, skip],
        ).fetchall()
        return [cls.model_validate_json(row[0]) for row in rows], int(total[0])

    # -- output projects

    async def create_project(self, project: OutputProject) -> OutputProject:
        await self._run(self._insert, "projects", project, None)
        return project

    async def get_project(self, project_id: str) -> OutputProject:
        return await self._run(self._load, "projects", OutputProject, project_id)

    async def list_projects(self, skip: int, limit: int) -> tuple[list[OutputProject], int]:
        return await self._run(self._select, "projects", OutputProject, {}, skip, limit)

    async def delete_project(self, project_id: str) -> None:
        def delete() -> None:
            with self._db:
                cursor = self._db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
                if cursor.rowcount == 0:
                    raise NotFound(f"no project with id {project_id!r}")
                for table in ("milestones", "runs", "events"):
                    self._db.execute(f"DELETE FROM {table} WHERE project_id = ?", (project_id,))

        await self._run(delete)

    async def update_project(self, project_id: str, **fields: Any) -> OutputProject:
        fields.setdefault("updated_at", utcnow())
        return await self._run(self._update, "projects", OutputProject, project_id, fields)

    async def set_agent_session_id_if_unset(self, project_id: str, conversation_id: str) -> str:
        def cas() -> str:
            with self._db:
                project = self._load("projects", OutputProject, project_id)
                if project.agent_session_id is not None:
                    return project.agent_session_id
                self._save(
                    "projects",
                    project.model_copy(
                        update={"agent_session_id": conversation_id, "updated_at": utcnow()}
                    ),
                )
                return conversation_id

        return await self._run(cas)

    async def replace_agent_session_id(
        self, project_id: str, expected: str | None, new: str | None
    ) -> bool:
        def cas() -> bool:
            with self._db:
                project = self._load("projects", OutputProject, project_id)
                if project.agent_session_id != expected:
                    return False
                self._save(
                    "projects",
                    project.model_copy(update={"agent_session_id": new, "updated_at": utcnow()}),
                )
                return True

        return await self._run(cas)

    # -- milestones

    async def create_milestone(self, milestone: Milestone) -> Milestone:
        await self._run(self._insert, "milestones", milestone, milestone.output_project_id)
        return milestone

    async def get_milestone(self, milestone_id: str) -> Milestone:
        return await self._run(self._load, "milestones", Milestone, milestone_id)

    async def list_milestones(
        self,
        output_project_id: str | None,
        status: MilestoneStatus | None,
        skip: int,
        limit: int,
    ) -> tuple[list[Milestone], int]:
        where: dict[str, Any] = {}
        if output_project_id is not None:
            where["project_id"] = output_project_id
        if status is not None:
            where["status"] = str(status)
        return await self._run(self._select, "milestones", Milestone, where, skip, limit)

    async def count_milestones(self, output_project_id: str) -> dict[MilestoneStatus, int]:
        def count() -> dict[MilestoneStatus, int]:
            rows = self._db.execute(
                "SELECT status, COUNT(*) FROM milestones WHERE project_id = ? GROUP BY status",
                (output_project_id,),
            ).fetchall()
            counts = dict.fromkeys(MilestoneStatus, 0)
            counts.update({MilestoneStatus(status): n for status, n in rows})
            return counts

        return await self._run(count)

    async def delete_milestone(
        self, milestone_id: str, only_if: Collection[MilestoneStatus]
    ) -> bool:
        def delete() -> bool:
            with self._db:
                milestone = self._load("milestones", Milestone, milestone_id)
                if milestone.status not in only_if:
                    return False
                self._db.execute("DELETE FROM milestones WHERE id = ?", (milestone_id,))
                return True

        return await self._run(delete)

    async def transition_milestone(
        self,
        milestone_id: str,
        only_if: Collection[MilestoneStatus],
        status: MilestoneStatus,
        **fields: Any,
    ) -> Milestone | None:
        def cas() -> Milestone | None:
            with self._db:
                milestone = self._load("milestones", Milestone, milestone_id)
                if milestone.status not in only_if:
                    return None
                updated = milestone.model_copy(
                    update={**fields, "status": status, "updated_at": utcnow()}
                )
                self._save("milestones", updated)
                return updated

        return await self._run(cas)

    async def update_milestone(self, milestone_id: str, **fields: Any) -> Milestone:
        fields.setdefault("updated_at", utcnow())
        return await self._run(self._update, "milestones", Milestone, milestone_id, fields)

    # -- headless runs

    async def create_run(self, run: Run) -> Run:
        await self._run(self._insert, "runs", run, run.output_project_id)
        return run

    async def get_run(self, run_id: str) -> Run:
        return await self._run(self._load, "runs", Run, run_id)

    async def update_run(self, run_id: str, **fields: Any) -> Run:
        return await self._run(self._update, "runs", Run, run_id, fields)

    async def list_runs(self, output_project_id: str) -> list[Run]:
        runs, _ = await self._run(
            self._select, "runs", Run, {"project_id": output_project_id}, 0, None
        )
        return runs

    # -- session history

    async def add_event(self, event: SessionEvent) -> SessionEvent:
        await self._run(self._insert, "events", event, event.output_project_id)
        return event

    async def list_events(
        self, output_project_id: str, since: datetime | None = None
    ) -> list[SessionEvent]:
        events, _ = await self._run(
            self._select, "events", SessionEvent, {"project_id": output_project_id}, 0, None
        )
        if since is not None:
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)  # naive means UTC, as in MongoDB
            events = [event for event in events if event.created_at >= since]
        return events
