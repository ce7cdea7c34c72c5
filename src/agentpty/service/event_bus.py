"""One stream of everything that happens to every project, for SSE clients and webhooks.

Each event gets an id that only grows, also across server restarts (the
first id of a server's lifetime is derived from the wall clock in
microseconds, then each event adds one), so a client's ``Last-Event-ID``
from an earlier lifetime is never taken for a newer event. The bus keeps the
last ``capacity`` events: a client that reconnects with an id still in that
window gets exactly what it missed; one whose id is older (or from before a
restart) first gets a ``resync`` event telling it to reload the projects
(whose state is in the store), then the whole window.

Publishing never blocks: each subscriber has a bounded queue, and one that
falls behind is cut off (its stream ends; it reconnects with its last id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from agentpty.domain.models import utcnow

__all__ = ["BusEvent", "EventBus", "Subscription"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One event: ``type`` (e.g. ``state``, ``session_started``), its project and data."""

    id: int
    type: str
    project_id: str | None
    data: dict[str, Any]
    at: str = field(default_factory=lambda: utcnow().isoformat())

    def payload(self) -> dict[str, Any]:
        """The JSON object sent to clients."""
        return {
            "id": self.id,
            "type": self.type,
            "project_id": self.project_id,
            "at": self.at,
            **self.data,
        }

    def sse(self) -> str:
        """The event as one server-sent-events message."""
        return f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(self.payload())}\n\n"


class Subscription:
    """A subscriber's queue; iterate it to receive events until it is closed or cut off.

    Every attached terminal holds one (for its project's agent state) and it
    is mostly empty, so its queue exists only while events wait and its
    waiter only while somebody waits (an ``asyncio.Queue`` was ~3 KiB).
    """

    __slots__ = (
        "_accept", "_bus", "_events", "_limit", "_on_event", "_waiter", "cut_off",
    )  # fmt: skip

    def __init__(
        self,
        bus: EventBus,
        limit: int,
        accept: Callable[[BusEvent], bool],
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self._limit = limit
        self._accept = accept
        self._on_event = on_event
        self._events: deque[BusEvent] | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: No more events will come (closed, or fell behind): ``get`` returns None.
        self.cut_off = False

    def _offer(self, event: BusEvent) -> None:
        if self.cut_off or not self._accept(event):
            return
        if self._events is None:
            self._events = deque()
        if len(self._events) >= self._limit:
            # A slow client must not hold the others back: it reconnects with its last id.
            self.close()
            return
        self._events.append(event)
        self._wake()
        if self._on_event is not None:
            self._on_event()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self._bus.unsubscribe(self)
        if not self.cut_off:
            self.cut_off = True
            self._events = None
            self._wake()

    def pending(self) -> list[BusEvent]:
        """The events queued now, without waiting (e.g. the last ones before closing)."""
        events = list(self._events or ())
        self._events = None  # an empty deque still holds a 0.5 KiB block
        return events

    async def get(self) -> BusEvent | None:
        """The next event; None once the subscription ended."""
        while not self._events:
            if self.cut_off:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._events.popleft()
        if not self._events:
            self._events = None
        return event

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusEvent]:
        while (event := await self.get()) is not None:
            yield event


class EventBus:
    """The server's event stream: monotonic ids, a bounded replay window, fan-out."""

    def __init__(self, capacity: int = 10_000, subscriber_limit: int = 1_000) -> None:
        self.capacity = capacity
        self.subscriber_limit = subscriber_limit
        self._recent: deque[BusEvent] = deque(maxlen=capacity)
        self._subscribers: set[Subscription] = set()
        self.closed = False
        #: Ids of this lifetime start above any id of an earlier one (wall clock, µs).
        self.first_id = time.time_ns() // 1000
        self._next_id = self.first_id

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def publish(self, type_: str, project_id: str | None, **data: Any) -> BusEvent:
        """Record and fan out one event; never blocks, never raises for a slow subscriber."""
        event = BusEvent(self._next_id, type_, project_id, data)
        self._next_id += 1
        self._recent.append(event)
        for subscription in list(self._subscribers):
            subscription._offer(event)
        return event

    def subscribe(
        self,
        last_event_id: int | None = None,
        accept: Callable[[BusEvent], bool] = lambda _event: True,
        on_event: Callable[[], None] | None = None,
    ) -> tuple[Subscription, list[BusEvent], bool]:
        """A live subscription, the events to replay first, and whether a resync is needed.

        ``on_event`` is called after each event is queued, for a subscriber
        that waits on something else as well and takes them with ``pending``.

        With ``last_event_id``, the replay holds the events after it. The
        resync flag is set when that id is older than the window (events were
        lost to the client): it must reload the current state.
        """
        subscription = Subscription(self, self.subscriber_limit, accept, on_event)
        if self.closed:
            subscription.close()
            return subscription, [], False
        self._subscribers.add(subscription)
        if last_event_id is None:
            return subscription, [], False
        oldest = self._recent[0].id if self._recent else self._next_id
        resync = last_event_id < oldest - 1 or last_event_id >= self._next_id
        if last_event_id >= self._next_id:
            # An id this lifetime never issued (a future one): replay nothing twice.
            return subscription, [], True
        replay = [event for event in self._recent if event.id > last_event_id and accept(event)]
        return subscription, replay, resync

    def close(self) -> None:
        """End every subscription (server shutdown: open event streams must not hold it up)."""
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.close()

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
