"""A project's history: what happened to its conversation and its processes.

Best effort by contract: a store outage is logged and never breaks a
terminal session or a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agentpty.domain.models import EventKind, SessionEvent, new_id
from agentpty.store.base import Store

__all__ = ["EventListener", "History"]

log = logging.getLogger(__name__)

#: Called with every recorded event: project id, kind, then ``agent_session_id`` and the detail.
EventListener = Callable[..., None]


class History:
    """Writes ``SessionEvent`` records (``GET /api/output-projects/{id}/events``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[EventListener] = []

    def add_listener(self, listener: EventListener) -> None:
        """Hear every event, recorded or not (h12: the global event stream)."""
        self._listeners.append(listener)

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
        for listener in self._listeners:  # h12 call site: the global event stream
            listener(project_id, str(kind), agent_session_id=conversation_id, **detail)
