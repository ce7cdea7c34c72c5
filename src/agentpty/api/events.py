"""``GET /api/events``: one server-sent-events stream for all projects.

Carries ``state`` (agent state changes), ``session_started``,
``session_exited``, ``session_expired``, ``session_id_changed`` and
``milestone`` events, each with an ``id``. A client reconnecting with the
``Last-Event-ID`` header (or ``?last_event_id=``) gets what it missed; when
that is no longer possible the stream begins with a ``resync`` event (reload
the projects: their state is current there). ``?project_id=`` narrows the
stream to one project. A comment line every ``KEEPALIVE`` seconds keeps
proxies from closing an idle stream. Requires the token like every ``/api``
route (the router is mounted with the token dependency).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from agentpty.api.deps import services
from agentpty.domain.errors import InvalidInput
from agentpty.service.container import Services
from agentpty.service.event_bus import BusEvent, Subscription

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["events"])
KEEPALIVE = 15.0


def _event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"Last-Event-ID must be the integer id of an event this server sent, not {raw!r}"
        ) from None


@router.get("/events")
async def events(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query(max_length=32)] = None,
    project_id: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events of every project (or of ``project_id``), resumable by id."""
    after = _event_id(last_event_id_header, last_event_id)

    def accept(event: BusEvent) -> bool:
        return project_id is None or event.project_id == project_id

    subscription, replay, resync = svc.bus.subscribe(after, accept)
    return StreamingResponse(
        _stream(request, subscription, replay, resync, svc.bus.last_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    subscription: Subscription,
    replay: list[BusEvent],
    resync: bool,
    last_id: int,
) -> AsyncIterator[str]:
    try:
        yield f"retry: 1000\n: agentpty events, last id {last_id}\n\n"
        if resync:
            yield 'event: resync\ndata: {"type": "resync"}\n\n'
        for event in replay:
            yield event.sse()
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    next_event = await subscription.get()
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n"
                continue
            if next_event is None:
                return  # cut off (too slow): the client reconnects with its last id
            yield next_event.sse()
    finally:
        subscription.close()
