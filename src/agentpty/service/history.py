"""A project's history: what happened to its conversation and its processes.

Best effort by contract: a store outage is logged and never breaks a
terminal session or a run.
"""

from __future__ import annotations

import logging
from typing import Any

from agentpty.domain.models import EventKind, SessionEvent, new_id
from agentpty.store.base import Store

__all__ = ["History"]

log = logging.getLogger(__name__)


class History:
    """Writes ``SessionEvent`` records (``GET /api/output-projects/{id}/events``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self, project_id: str, kind: EventKind, conversation_id: str | None, **detail: Any
    ) -> None:
        """Add one event; ``conversation_id`` is stored as ``agent_session_id``."""
        try:
            await self.store.add_event(
                SessionEvent(
                    id=new_id(),
                    output_project_id=project_id,
                    kind=kind,
                    agent_session_id=conversation_id,
                    detail=detail,
                )
            )
        except Exception:
            # History is best effort: a store outage must not break a terminal.
            log.exception("could not record %s event for project %s", kind, project_id)
