"""Entities stored by agentpty and the enums that describe their states."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NewType

from pydantic import BaseModel, Field

__all__ = [
    "AgentState",
    "EventKind",
    "Milestone",
    "MilestoneStatus",
    "OutputProject",
    "ProjectId",
    "Run",
    "RunStatus",
    "SessionEvent",
    "SessionState",
    "new_id",
    "utcnow",
]

ProjectId = NewType("ProjectId", str)


def utcnow() -> datetime:
    """Current time in UTC, truncated to milliseconds (what MongoDB keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """A fresh opaque id: 32 hex characters."""
    return uuid.uuid4().hex


class SessionState(StrEnum):
    NONE = "none"
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"


class AgentState(StrEnum):
    """What a project's agent is doing, as far as agentpty can tell."""

    #: The process is starting; the agent has not reported yet.
    STARTING = "starting"
    #: A prompt was submitted or a tool runs.
    WORKING = "working"
    #: A permission or question prompt waits for the user (``state_detail`` says what).
    NEEDS_INPUT = "needs_input"
    #: The turn ended; the agent waits at its prompt.
    IDLE = "idle"
    #: The process ended (``state_detail["exit_code"]``).
    EXITED = "exited"
    #: Nothing can tell (never started, or an agent that reports nothing yet).
    UNKNOWN = "unknown"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventKind(StrEnum):
    STARTED = "started"
    EXITED = "exited"
    EXPIRED = "expired"
    ID_CHANGED = "id_changed"


class OutputProject(BaseModel):
    id: str
    name: str
    workspace_path: str
    agent: str
    agent_session_id: str | None = None
    #: The ``agent_session_id`` whose conversation is known to hold messages
    #: (seen on disk or reported by the agent); if that conversation later
    #: vanishes, it expired rather than never existed.
    confirmed_session_id: str | None = None
    status: str = "active"
    #: What the agent is doing (kept across restarts; see service/agent_state.py).
    agent_state: AgentState = AgentState.UNKNOWN
    state_since: datetime | None = None
    #: Words for the state: the pending question (``tool``, ``detail``), the exit code.
    state_detail: dict[str, Any] = Field(default_factory=dict)
    #: Where this project's state changes are POSTed, besides the server-wide URL.
    webhook_url: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Milestone(BaseModel):
    id: str
    output_project_id: str
    title: str
    context: str = ""
    status: MilestoneStatus = MilestoneStatus.PENDING
    context_path: str | None = None
    status_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None


class Run(BaseModel):
    """One headless (``-p``) run of the agent in a project's conversation."""

    id: str
    output_project_id: str
    prompt: str
    status: RunStatus = RunStatus.RUNNING
    agent_session_id: str | None = None
    result: str | None = None
    cost_usd: float | None = None
    duration_ms: int | None = None
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class SessionEvent(BaseModel):
    """Something that happened to a project's conversation or process."""

    id: str
    output_project_id: str
    kind: EventKind
    agent_session_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
