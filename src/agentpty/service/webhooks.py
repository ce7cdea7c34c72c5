"""Webhooks: state changes POSTed as signed JSON to the server's and each project's URL.

Each endpoint has its own bounded queue and one worker task, so a slow or
failing endpoint never delays the session, the event stream or the other
endpoints. A delivery is retried with exponential backoff (``attempts``
tries); when the queue of a dead endpoint is full the oldest event is
dropped. A failing endpoint is logged once when its failure streak begins
and once when it recovers, not once per event.

Body: the bus event's JSON (``id``, ``type``, ``project_id``, ``at``, and the
state fields). Headers: ``X-Agentpty-Signature: sha256=<hex HMAC-SHA256 of
the body>``, ``X-Agentpty-Event``, ``X-Agentpty-Delivery`` (the event id, the
same across retries, for de-duplication).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from agentpty.service.event_bus import BusEvent, EventBus
from agentpty.service.tasks import OwnedTasks

__all__ = ["WebhookSender", "sign"]

log = logging.getLogger(__name__)

#: Event types sent to webhooks: what people want in their chat tool.
WEBHOOK_TYPES = frozenset({"state"})
QUEUE_LIMIT = 1000
SIGNATURE_HEADER = "X-Agentpty-Signature"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass
class _Endpoint:
    url: str
    queue: asyncio.Queue[BusEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    failing: bool = False
    worker: asyncio.Task[None] | None = None


class WebhookSender:
    """Subscribes to the bus; sends each state event to the global URL and the project's."""

    def __init__(
        self,
        bus: EventBus,
        secret: bytes,
        *,
        global_url: str,
        project_url: Callable[[str], Awaitable[str | None]],
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.bus = bus
        self.secret = secret
        self.global_url = global_url
        self.project_url = project_url
        self.attempts = attempts
        self.backoff = backoff
        self._timeout = timeout
        self._endpoints: dict[str, _Endpoint] = {}
        self._tasks = OwnedTasks()
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Begin forwarding bus events (call inside the running loop)."""
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._tasks.spawn(self._dispatch(), "webhook dispatcher")

    async def _dispatch(self) -> None:
        last: int | None = None
        while not self.bus.closed:
            subscription, replay, _ = self.bus.subscribe(
                last, accept=lambda event: event.type in WEBHOOK_TYPES
            )
            for event in replay:
                last = await self._route(event)
            async for event in subscription:
                last = await self._route(event)
            # Cut off after falling behind the bus: resume after the last event routed.
            if last is None:
                last = self.bus.last_id

    async def _route(self, event: BusEvent) -> int:
        urls = [self.global_url] if self.global_url else []
        if event.project_id is not None:
            try:
                own = await self.project_url(event.project_id)
            except Exception:
                own = None  # a deleted project, a store outage: the global URL still gets it
            if own and own not in urls:
                urls.append(own)
        for url in urls:
            self._enqueue(url, event)
        return event.id

    def _enqueue(self, url: str, event: BusEvent) -> None:
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = _Endpoint(url)
            endpoint.worker = self._tasks.spawn(self._work(endpoint), f"webhook {url}")
        if endpoint.queue.full():
            endpoint.queue.get_nowait()  # a dead endpoint keeps only the newest events
        endpoint.queue.put_nowait(event)

    async def _work(self, endpoint: _Endpoint) -> None:
        while True:
            event = await endpoint.queue.get()
            await self._deliver(endpoint, event)

    async def _deliver(self, endpoint: _Endpoint, event: BusEvent) -> bool:
        body = json.dumps(event.payload()).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            "X-Agentpty-Event": event.type,
            "X-Agentpty-Delivery": str(event.id),
            "User-Agent": "agentpty-webhook",
        }
        delay = self.backoff
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                assert self._client is not None
                response = await self._client.post(endpoint.url, content=body, headers=headers)
                if response.status_code < 300:
                    if endpoint.failing:
                        endpoint.failing = False
                        log.warning("webhook %s: delivering again", endpoint.url)
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        if not endpoint.failing:
            endpoint.failing = True
            log.warning(
                "webhook %s failing (%s after %d attempts); further failures are not logged "
                "until it recovers",
                endpoint.url,
                problem,
                self.attempts,
            )
        return False

    async def close(self) -> None:
        await self._tasks.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
