"""Stand-in for the Anthropic Messages API, used only in tests.

No Anthropic service is reachable from the test machines, so tests point the
real Claude Code CLI at this local fake (``ANTHROPIC_BASE_URL=api.url``).  It
is not a model: every conversation turn is answered with the text
``turn=N`` where ``N`` is the number of *real user turns* in the request's
``messages`` list, so a resumed conversation visibly answers ``turn=2`` etc.

What counts as a user turn: a message with ``role == "user"`` whose content is
a non-empty string, or a list containing at least one ``text`` block.  The CLI
also sends tool results as ``role: "user"`` messages whose content holds only
``tool_result`` blocks; those are not counted.  Claude Code 2.1.197 puts a
``<system-reminder>`` text block (current date etc.) in front of the first user
text, inside the same message, and inserts a ``role: "system"`` message after
it; neither changes the count.  Local commands such as ``/clear`` are never
sent to the model.

Requests are split in two lists:

* ``requests`` -- the main conversation requests (the ones whose answer the
  user sees).  Turn counting and ``last_user_text()`` use only these.
* ``side_requests`` -- everything else the CLI sends to ``/v1/messages``.
  With ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` Claude Code 2.1.197 sent
  none in our experiments.  Without it, it sends a session *title* request
  after the first prompt: same model, ``"tools": []``, a "Generate a concise,
  sentence-case title" system prompt and ``output_config.format`` of type
  ``json_schema`` (``{"title": string}``).  Quota checks (``max_tokens: 1``)
  are also treated as side requests.  See ``is_side_request``.  Side requests
  that ask for a JSON schema get a JSON object filled with placeholder values.

Every request carries the CLI's current conversation id in
``metadata.user_id`` (a JSON string with ``session_id``); see ``session_id()``.

Usage::

    with FakeMessagesAPI() as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        ...
        assert api.wait_for_requests(1, timeout=30)
        assert api.last_user_text() == "hello"

``api.hold_replies()`` / ``api.release_replies()`` (or ``reply_delay``) keep
conversation requests unanswered so a test can observe the CLI while busy.

Scripted replies (directives a test writes into its prompt; see
``scripted_tool_call`` and ``scripted_delay``):

* ``[[bash: <command>]]`` -- the answer is a ``Bash`` tool call running
  ``<command>`` (e.g. ``touch x``, which Claude Code asks permission for in its
  default permission mode).  The request that carries the tool's result is
  answered with the text ``tool done turn=N``.
* ``[[slow: <seconds>]]`` -- the answer (to the prompt and to its tool result)
  comes only after that many seconds: the CLI stays busy meanwhile.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = [
    "FakeMessagesAPI",
    "count_user_turns",
    "is_side_request",
    "scripted_delay",
    "scripted_tool_call",
    "session_id",
    "user_text",
]

JSONDict = dict[str, Any]

_CLAUDE_CODE_MARKER = "Claude Code"


def _blocks(content: object) -> list[JSONDict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [cast(JSONDict, b) for b in content if isinstance(b, dict)]
    return []


def _is_user_turn(message: object) -> bool:
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, str):
        return content != ""
    return any(b.get("type") == "text" for b in _blocks(content))


def count_user_turns(body: JSONDict) -> int:
    """Number of user messages carrying text (tool_result-only ones excluded)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(1 for m in messages if _is_user_turn(m))


def user_text(body: JSONDict) -> str:
    """Concatenated text blocks of the last user turn in ``body`` ('' if none).

    Blocks that are ``<system-reminder>`` context injected by the CLI are left
    out, so a plain prompt "hello" yields exactly "hello".  A custom slash
    command yields its ``<command-message>/<command-name>/<command-args>``
    block followed by the expanded Markdown body.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if _is_user_turn(message):
            blocks = _blocks(cast(JSONDict, message).get("content"))
            return "".join(
                str(b.get("text", ""))
                for b in blocks
                if b.get("type") == "text"
                and not str(b.get("text", "")).startswith("<system-reminder>")
            )
    return ""


def session_id(body: JSONDict) -> str | None:
    """Conversation id the CLI put into ``metadata.user_id`` (None if absent)."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    raw = metadata.get("user_id")
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("session_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _system_text(body: JSONDict) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    return "".join(str(b.get("text", "")) for b in _blocks(system))


def is_side_request(body: JSONDict) -> bool:
    """True for helper requests that are not the main conversation.

    Heuristic matching what Claude Code 2.1.197 sends: the conversation request
    carries the tool list and a system prompt naming Claude Code; quota checks
    use ``max_tokens: 1``; title/topic/summary helpers send no tools.
    """
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= 1:
        return True
    if not body.get("tools"):
        return True
    return _CLAUDE_CODE_MARKER not in _system_text(body)


BASH_DIRECTIVE = re.compile(r"\[\[bash: ([^\]]+)\]\]")
SLOW_DIRECTIVE = re.compile(r"\[\[slow: ([0-9.]+)\]\]")


def _answers_tool_result(body: JSONDict) -> bool:
    """True when the request's last message carries tool results (no user text)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    blocks = _blocks(last.get("content"))
    return bool(blocks) and all(b.get("type") == "tool_result" for b in blocks)


def scripted_tool_call(body: JSONDict) -> str | None:
    """The Bash command to answer with, when the prompt asks for one with ``[[bash: ...]]``.

    None once the tool's result is in the request: the turn then ends with text.
    """
    if _answers_tool_result(body):
        return None
    match = BASH_DIRECTIVE.search(user_text(body))
    return match.group(1).strip() if match else None


def scripted_delay(body: JSONDict) -> float:
    """Seconds to wait before answering, asked for with ``[[slow: N]]`` (0 if not)."""
    match = SLOW_DIRECTIVE.search(user_text(body))
    return float(match.group(1)) if match else 0.0


_PLACEHOLDERS: dict[str, object] = {
    "string": "Fake session",
    "number": 0,
    "integer": 0,
    "boolean": False,
    "array": [],
    "object": {},
    "null": None,
}


def _side_reply(body: JSONDict) -> str:
    output_config = body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if not isinstance(schema, dict):
        return "ok"
    props = schema.get("properties")
    result: dict[str, object] = {}
    if isinstance(props, dict):
        for name, prop in props.items():
            kind = prop.get("type") if isinstance(prop, dict) else None
            result[str(name)] = _PLACEHOLDERS.get(kind, "") if isinstance(kind, str) else ""
    return json.dumps(result)


def _reply_text(body: JSONDict, side: bool) -> str:
    if side:
        return _side_reply(body)
    if _answers_tool_result(body):
        return f"tool done turn={count_user_turns(body)}"
    return f"turn={count_user_turns(body)}"


def _message(body: JSONDict, text: str) -> JSONDict:
    return {
        "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model", "claude-fake")),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _sse_events(body: JSONDict, text: str) -> list[tuple[str, JSONDict]]:
    start = _message(body, "")
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = dict(start["usage"], output_tokens=0)
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _tool_sse_events(body: JSONDict, command: str) -> list[tuple[str, JSONDict]]:
    """An assistant message that is one Bash tool call (stop reason ``tool_use``)."""
    start = _message(body, "")
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = dict(start["usage"], output_tokens=0)
    tool_input = json.dumps({"command": command, "description": f"Run {command}"})
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "tool_use",
                    "id": f"toolu_fake_{uuid.uuid4().hex[:20]}",
                    "name": "Bash",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": tool_input},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeMessagesAPI

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
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.api._record_call("GET", self.path)
        self._send_json(
            404, {"type": "error", "error": {"type": "not_found_error", "message": "fake"}}
        )

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.server.api._record_call("POST", self.path)
        path = urlsplit(self.path).path
        body = self._read_json()
        if path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": 1})
            return
        if path != "/v1/messages":
            self._send_json(200, {})
            return
        side = is_side_request(body)
        self.server.api._record(body, side)
        if not side:
            self.server.api._wait_for_release()
            delay = scripted_delay(body)
            if delay > 0:
                time.sleep(delay)
            command = scripted_tool_call(body)
            if command is not None and body.get("stream") is True:
                self._send_events(_tool_sse_events(body, command))
                return
        text = _reply_text(body, side)
        if body.get("stream") is True:
            self._send_stream(body, text)
        else:
            self._send_json(200, _message(body, text))

    def _send_stream(self, body: JSONDict, text: str) -> None:
        self._send_events(_sse_events(body, text))

    def _send_events(self, events: list[tuple[str, JSONDict]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        self.close_connection = True
        for event, data in events:
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()


class FakeMessagesAPI:
    """Local fake Anthropic Messages API in a daemon thread (context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, reply_delay: float = 0.0) -> None:
        #: seconds to wait before answering a conversation request (busy-state tests)
        self.reply_delay = reply_delay
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

    # -- lifecycle -------------------------------------------------------
    def start(self) -> FakeMessagesAPI:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-messages-api", daemon=True
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

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- controlling replies ----------------------------------------------
    def hold_replies(self) -> None:
        """Keep conversation requests unanswered (recorded, CLI stays busy)."""
        self._released.clear()

    def release_replies(self) -> None:
        """Answer held and future conversation requests again."""
        self._released.set()

    def _wait_for_release(self) -> None:
        self._released.wait()
        if self.reply_delay > 0:
            time.sleep(self.reply_delay)

    # -- recording -------------------------------------------------------
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
        """Snapshot of the main conversation request bodies, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def side_requests(self) -> list[JSONDict]:
        """Snapshot of helper request bodies (quota, title, summary ...)."""
        with self._cond:
            return list(self._side_requests)

    def wait_for_requests(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` conversation requests arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= n, timeout=timeout)

    def last_user_text(self) -> str:
        """Text of the last user turn of the latest conversation request."""
        with self._cond:
            return user_text(self._requests[-1]) if self._requests else ""

    def last_session_id(self) -> str | None:
        """Conversation id of the latest conversation request (None if none)."""
        with self._cond:
            return session_id(self._requests[-1]) if self._requests else None

    def last_turn(self) -> int:
        """Number of user turns in the latest conversation request (0 if none)."""
        with self._cond:
            return count_user_turns(self._requests[-1]) if self._requests else 0

    def clear(self) -> None:
        """Forget all recorded requests."""
        with self._cond:
            self._requests.clear()
            self._side_requests.clear()
            self._calls.clear()
