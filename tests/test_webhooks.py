"""Webhooks: signed state events, retries with backoff, a failing endpoint never slows a session."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually, make_settings, serve

SECRET = "webhook-test-secret"


class Receiver:
    """A local HTTP endpoint recording what it was sent; ``status`` decides its answers.

    ``hold`` (when set) keeps the first request unanswered until ``release``
    is set: an endpoint that hangs.
    """

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.hold = False
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.received.append((dict(self.headers), body))
                    first = len(receiver.received) == 1
                if first and receiver.hold:
                    receiver.release.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def deliveries(self) -> list[str]:
        with self._lock:
            return [headers["X-Agentpty-Delivery"] for headers, _ in self.received]


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, bad = Receiver(), Receiver()
    for receiver in (good, bad):
        receiver.thread.start()
    try:
        yield good, bad
    finally:
        for receiver in (good, bad):
            receiver.release.set()
            receiver.server.shutdown()
            receiver.server.server_close()


async def test_signed_events_retries_and_a_failing_endpoint_does_not_slow_the_session(
    tmp_path: Path, receivers: tuple[Receiver, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    """Global and per-project URLs get signed state events; a hanging, then failing, endpoint
    is retried, logged once per failure streak, and the terminal keeps answering meanwhile."""
    good, bad = receivers
    bad.hold, bad.status = True, 500
    caplog.set_level(logging.WARNING, logger="agentpty.service.webhooks")
    settings = make_settings(
        tmp_path / "data",
        webhook_url=good.url,
        webhook_secret=SECRET,
        webhook_attempts=2,
        webhook_backoff=0.05,
        state_quiet_time=0.5,
    )
    async with serve(settings) as server:
        project = await server.create_project(webhook_url=bad.url)
        async with server.terminal(project) as term:
            await term.recv_type("status")
            # The bad endpoint hangs on its first request: the session answers anyway.
            await eventually(lambda: asyncio.sleep(0, len(bad.received) >= 1))
            for word in ("one", "two", "three"):
                await term.type(f"echo {word}-reply\r")
                await term.read_until(f"{word}-reply\r\n")
            await eventually(
                lambda: asyncio.sleep(0, "idle" in [e["agent_state"] for e in good.events()])
            )
            assert len(bad.received) == 1  # still hanging
            bad.release.set()
            await eventually(lambda: asyncio.sleep(0, len(set(bad.deliveries())) >= 2))
            bad.status = 200
            await term.type("echo recovered\r")
            await term.read_until("recovered\r\n")
            await eventually(lambda: asyncio.sleep(0, bad.status == 200 and _recovered(caplog)))
    for headers, body in good.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Agentpty-Signature"] == expected
        assert headers["X-Agentpty-Event"] == "state"
        assert json.loads(body)["project_id"] == project
    deliveries = bad.deliveries()
    # Every failed event was tried twice (attempts=2) under the same delivery id.
    assert deliveries[0] == deliveries[1], deliveries
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1, [r.getMessage() for r in caplog.records]
    assert "HTTP 500" in failing[0].getMessage() or "ReadTimeout" in failing[0].getMessage()


def _recovered(caplog: pytest.LogCaptureFixture) -> bool:
    return any("delivering again" in record.getMessage() for record in caplog.records)
