"""Stand-in for the OpenAI Responses API, used only in tests.

No OpenAI service is reachable from the test machines, so tests point the
real Codex CLI at this local fake (a ``model_providers`` entry in
``$CODEX_HOME/config.toml`` whose ``base_url`` is ``api.url + "/v1"``; see
``tests/codex_world.py``). It is not a model: every conversation request is
answered, as a server-sent event stream, with the text ``turn=N`` where ``N``
is the number of *typed user turns* in the request's ``input`` list, so a
resumed conversation visibly answers ``turn=2``.

What counts as a user turn: an ``input`` item of ``type: "message"`` and
``role: "user"`` with at least one ``input_text`` part that is not context
the CLI injects itself. Codex 0.171.0 sends, before the first typed prompt,
user-role messages holding ``<environment_context>`` (cwd, shell, date) and
sometimes AGENTS.md instructions; those start with ``<`` or ``# AGENTS.md``
and are not counted (``is_injected_context``).

Requests are split in two lists:

* ``requests`` -- the conversation requests (the ones whose answer the user
  sees). Turn counting and ``last_user_text()`` use only these.
* ``side_requests`` -- helper requests. Codex 0.171.0 sends one after the
  first prompt of a conversation: a thread *title* request with ``"tools":
  []``, ``client_metadata`` naming ``"thread_source":"thread_title"`` and
  ``text.format`` of type ``json_schema`` (``{"title": string}``). Side
  requests that ask for a JSON schema get a JSON object of placeholder values.

Every request names the CLI's conversation id in ``client_metadata.thread_id``
(``thread_id(body)``, ``api.last_thread_id()``).

Requests other than ``POST /v1/responses`` are recorded in ``calls`` and
answered: ``GET /v1/models`` with an empty model list, anything else with an
empty JSON object.

Usage::

    with FakeResponsesAPI() as api:
        write_codex_config(home, base_url=api.url + "/v1")
        ...
        assert api.wait_for_requests(1, timeout=30)
        assert api.last_turn() == 1

``api.hold_replies()`` / ``api.release_replies()`` keep requests unanswered so
a test can observe the CLI while busy; ``api.fail_with(400, "why")`` answers
conversation requests with that HTTP error instead (``None`` stops it).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = [
    "FakeResponsesAPI",
    "count_user_turns",
    "is_injected_context",
    "is_side_request",
    "thread_id",
    "user_texts",
]

JSONDict = dict[str, Any]

#: How the context blocks Codex injects as user messages begin.
_INJECTED_PREFIXES = ("<", "# AGENTS.md")


def is_injected_context(text: str) -> bool:
    """True for a user-role text the CLI adds itself (environment, instructions)."""
    return text.lstrip().startswith(_INJECTED_PREFIXES)


def _user_message_texts(item: object) -> list[str]:
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        return []
    if item.get("role") != "user":
        return []
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        str(part.get("text", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") == "input_text"
    ]


def user_texts(body: JSONDict) -> list[str]:
    """The typed user turns of a request, oldest first (injected context left out)."""
    items = body.get("input")
    if not isinstance(items, list):
        return []
    turns = []
    for item in items:
        texts = [t for t in _user_message_texts(item) if t and not is_injected_context(t)]
        if texts:
            turns.append("".join(texts))
    return turns


def count_user_turns(body: JSONDict) -> int:
    """Number of typed user turns in a request's ``input``."""
    return len(user_texts(body))


def thread_id(body: JSONDict) -> str | None:
    """The conversation id the CLI put into ``client_metadata`` (None if absent)."""
    metadata = body.get("client_metadata")
    value = metadata.get("thread_id") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def _schema(body: JSONDict) -> JSONDict | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    return cast(JSONDict, schema) if isinstance(schema, dict) else None


def is_side_request(body: JSONDict) -> bool:
    """True for helper requests (thread title, ...), not the conversation itself.

    The conversation request of Codex 0.171.0 always carries its tool list and
    no output schema; the title request has no tools and a JSON schema.
    """
    return not body.get("tools") or _schema(body) is not None


_PLACEHOLDERS: dict[str, object] = {
    "string": "Fake title",
    "number": 0,
    "integer": 0,
    "boolean": False,
    "array": [],
    "object": {},
    "null": None,
}


def _reply_text(body: JSONDict, side: bool) -> str:
    if not side:
        return f"turn={count_user_turns(body)}"
    schema = _schema(body)
    props = schema.get("properties") if schema else None
    if not isinstance(props, dict):
        return "ok"
    result: dict[str, object] = {}
    for name, prop in props.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        result[str(name)] = _PLACEHOLDERS.get(kind, "") if isinstance(kind, str) else ""
    return json.dumps(result)


def _usage() -> JSONDict:
    return {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 2,
    }


def _sse_events(body: JSONDict, text: str) -> Iterator[JSONDict]:
    """The Responses API stream for one assistant message holding ``text``."""
    response_id = f"resp_fake_{uuid.uuid4().hex[:24]}"
    item_id = f"msg_fake_{uuid.uuid4().hex[:24]}"
    response: JSONDict = {
        "id": response_id,
        "object": "response",
        "model": str(body.get("model", "gpt-fake")),
        "status": "in_progress",
        "output": [],
    }
    yield {"type": "response.created", "response": response}
    item: JSONDict = {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    yield {
        "type": "response.output_text.delta",
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": text,
    }
    done = dict(
        item,
        status="completed",
        content=[{"type": "output_text", "text": text, "annotations": []}],
    )
    yield {"type": "response.output_item.done", "output_index": 0, "item": done}
    yield {
        "type": "response.completed",
        "response": dict(response, status="completed", output=[done], usage=_usage()),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeResponsesAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The CLI may be killed mid-answer (tests do that on purpose): ignore
        # the resulting broken pipes instead of printing tracebacks.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_json(self) -> JSONDict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return cast(JSONDict, data) if isinstance(data, dict) else {}

    def _send_json(self, status: int, payload: JSONDict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.api._record_call("GET", self.path)
        if urlsplit(self.path).path.endswith("/models"):
            self._send_json(200, {"object": "list", "data": [], "models": []})
            return
        self._send_json(404, {"error": {"message": "not found (fake)", "type": "not_found"}})

    def do_POST(self) -> None:
        self.server.api._record_call("POST", self.path)
        body = self._read_json()
        if not urlsplit(self.path).path.endswith("/responses"):
            self._send_json(200, {})
            return
        side = is_side_request(body)
        self.server.api._record(body, side)
        if not side:
            self.server.api._wait_for_release()
            failure = self.server.api.failure
            if failure is not None:
                status, message = failure
                self._send_json(status, {"error": {"message": message, "type": "fake_error"}})
                return
        self._send_stream(body, _reply_text(body, side))

    def _send_stream(self, body: JSONDict, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for event in _sse_events(body, text):
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()


class FakeResponsesAPI:
    """Local fake OpenAI Responses API in a daemon thread (context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._released = threading.Event()
        self._released.set()
        #: (HTTP status, message) answered to conversation requests, or None.
        self.failure: tuple[int, str] | None = None
        self._server = _Server((host, port), _Handler)
        self._server.api = self
        self._cond = threading.Condition()
        self._requests: list[JSONDict] = []
        self._side_requests: list[JSONDict] = []
        self._calls: list[tuple[str, str]] = []
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"

    def start(self) -> FakeResponsesAPI:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-responses-api", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeResponsesAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def hold_replies(self) -> None:
        """Keep conversation requests unanswered (recorded; the CLI stays busy)."""
        self._released.clear()

    def release_replies(self) -> None:
        """Answer held and future requests again."""
        self._released.set()

    def fail_with(self, status: int | None, message: str = "failure (fake)") -> None:
        """Answer conversation requests with HTTP ``status``; None answers normally again."""
        self.failure = None if status is None else (status, message)

    def _wait_for_release(self) -> None:
        self._released.wait()

    def _record(self, body: JSONDict, side: bool) -> None:
        with self._cond:
            (self._side_requests if side else self._requests).append(body)
            self._cond.notify_all()

    def _record_call(self, method: str, path: str) -> None:
        with self._cond:
            self._calls.append((method, path))

    @property
    def calls(self) -> list[tuple[str, str]]:
        """Every (method, path-with-query) the fake received, oldest first."""
        with self._cond:
            return list(self._calls)

    @property
    def requests(self) -> list[JSONDict]:
        """Snapshot of the conversation request bodies, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def side_requests(self) -> list[JSONDict]:
        """Snapshot of the helper request bodies (thread title, ...), oldest first."""
        with self._cond:
            return list(self._side_requests)

    def wait_for_requests(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` conversation requests arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= n, timeout=timeout)

    def last_turn(self) -> int:
        """Number of typed user turns in the latest request (0 if none)."""
        with self._cond:
            return count_user_turns(self._requests[-1]) if self._requests else 0

    def last_user_text(self) -> str:
        """Text of the last typed user turn of the latest request ('' if none)."""
        with self._cond:
            turns = user_texts(self._requests[-1]) if self._requests else []
            return turns[-1] if turns else ""

    def last_thread_id(self) -> str | None:
        """Conversation id of the latest conversation request (None if none)."""
        with self._cond:
            return thread_id(self._requests[-1]) if self._requests else None
