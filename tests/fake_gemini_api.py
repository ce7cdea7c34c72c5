"""Stand-in for Google's Generative Language (Gemini) API, used only in tests.

No Google service is reachable from the test machines, so tests point the
real Gemini CLI at this local fake (``GOOGLE_GEMINI_BASE_URL=api.url`` with
any ``GEMINI_API_KEY``). It is not a model: every conversation request is
answered, as a server-sent event stream, with the text ``turn=N`` where ``N``
is the number of *typed user turns* in the request's ``contents``, so a
resumed conversation visibly answers ``turn=2``.

What counts as a user turn: a ``contents`` entry with ``role: "user"`` and at
least one ``text`` part that is not the ``<session_context>`` block Gemini CLI
0.61.0 puts in front of the first prompt (in the same entry or its own).
``functionResponse``-only entries (tool results) are not counted.

Requests are split in two lists:

* ``requests`` -- ``:streamGenerateContent`` calls carrying the tool list:
  the conversation itself.
* ``side_requests`` -- everything else. Gemini CLI 0.61.0 asks a "flash-lite"
  model (``:generateContent``, no tools, ``responseJsonSchema``) to rate each
  prompt's complexity for its model router; such requests get a JSON object
  of placeholder values matching the schema.

Usage::

    with FakeGeminiAPI() as api:
        env["GOOGLE_GEMINI_BASE_URL"] = api.url
        ...
        assert api.wait_for_requests(1, timeout=30)
        assert api.last_turn() == 1

``api.hold_replies()`` / ``api.release_replies()`` keep conversation requests
unanswered so a test can observe the CLI while busy.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = ["FakeGeminiAPI", "count_user_turns", "is_side_request", "user_texts"]

JSONDict = dict[str, Any]
_CONTEXT_PREFIX = "<session_context>"
_PLACEHOLDERS: dict[str, object] = {
    "STRING": "fake",
    "NUMBER": 1,
    "INTEGER": 1,
    "BOOLEAN": False,
    "ARRAY": [],
    "OBJECT": {},
}


def user_texts(body: JSONDict) -> list[str]:
    """The typed user turns of a request, oldest first (session context left out)."""
    turns = []
    contents = body.get("contents")
    for entry in contents if isinstance(contents, list) else []:
        if not isinstance(entry, dict) or entry.get("role") != "user":
            continue
        parts = entry.get("parts")
        texts = [
            str(part["text"])
            for part in (parts if isinstance(parts, list) else [])
            if isinstance(part, dict)
            and isinstance(part.get("text"), str)
            and not part["text"].startswith(_CONTEXT_PREFIX)
        ]
        if texts:
            turns.append("".join(texts))
    return turns


def count_user_turns(body: JSONDict) -> int:
    return len(user_texts(body))


def _schema(body: JSONDict) -> JSONDict | None:
    config = body.get("generationConfig")
    schema = config.get("responseJsonSchema") if isinstance(config, dict) else None
    return cast(JSONDict, schema) if isinstance(schema, dict) else None


def is_side_request(path: str, body: JSONDict) -> bool:
    """True for helper calls (the model router's rating), not the conversation."""
    return "streamGenerateContent" not in path or not body.get("tools") or bool(_schema(body))


def _side_text(body: JSONDict) -> str:
    schema = _schema(body)
    props = schema.get("properties") if schema else None
    if not isinstance(props, dict):
        return "ok"
    return json.dumps(
        {
            str(name): _PLACEHOLDERS.get(str(prop.get("type", "")).upper(), "")
            for name, prop in props.items()
            if isinstance(prop, dict)
        }
    )


def _answer(text: str) -> JSONDict:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
        "modelVersion": "gemini-fake",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeGeminiAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The CLI may be killed mid-answer: ignore the broken pipes.
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
        self._send_json(404, {"error": {"code": 404, "message": "fake", "status": "NOT_FOUND"}})

    def do_POST(self) -> None:
        self.server.api._record_call("POST", self.path)
        path = urlsplit(self.path).path
        body = self._read_json()
        if path.endswith(":countTokens"):
            self._send_json(200, {"totalTokens": 1})
            return
        side = is_side_request(path, body)
        self.server.api._record(body, side)
        if side:
            answer = _answer(_side_text(body))
        else:
            self.server.api._released.wait()
            answer = _answer(f"turn={count_user_turns(body)}")
        if "streamGenerateContent" not in path:
            self._send_json(200, answer)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(f"data: {json.dumps(answer)}\r\n\r\n".encode())
        self.wfile.flush()


class FakeGeminiAPI:
    """Local fake Gemini API in a daemon thread (context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._released = threading.Event()
        self._released.set()
        self._server = _Server((host, port), _Handler)
        self._server.api = self
        self._cond = threading.Condition()
        self._requests: list[JSONDict] = []
        self._side_requests: list[JSONDict] = []
        self._calls: list[tuple[str, str]] = []
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"

    def start(self) -> FakeGeminiAPI:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-gemini-api", daemon=True
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

    def __enter__(self) -> FakeGeminiAPI:
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
        self._released.set()

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
        with self._cond:
            return list(self._side_requests)

    def wait_for_requests(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` conversation requests arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= n, timeout=timeout)

    def last_turn(self) -> int:
        with self._cond:
            return count_user_turns(self._requests[-1]) if self._requests else 0

    def last_user_text(self) -> str:
        with self._cond:
            turns = user_texts(self._requests[-1]) if self._requests else []
            return turns[-1] if turns else ""
