"""The WebSocket terminal protocol: frames parsed and built here, for server and clients.

I/O free. client → server: ``input``, ``resize``, ``signal`` (JSON text frames).
server → client: ``status``, ``output``, ``error``, ``closed``.

Two dialects, chosen by the client with ``Sec-WebSocket-Protocol``:

- ``agentpty.v1.json`` (the default, also when no subprotocol is offered):
  every server frame is a JSON text frame; output is
  ``{"type": "output", "data": "<text>"}``.
- ``agentpty.v2.binary``: output is a *binary* frame holding the terminal's
  bytes as they came from the PTY (UTF-8; a frame never ends inside a
  character), with no JSON around them. ``status``, ``error`` and ``closed``
  stay JSON text frames, and the client still sends JSON text frames.

The server accepts the first dialect it knows from the client's list
(``choose_subprotocol``). Clients use ``parse_server_frame`` to read either
dialect and ``input_frame``/``resize_frame``/``signal_frame`` to write. The
server validates client frames with ``client_messages.parse_client_message``
(pydantic, which clients such as ``agentpty attach`` need not import).

``status`` names the project as ``project_id``. Its ``session_id`` key
repeats the project id for clients of the previous release: deprecated,
to be removed in the next release. (A "session" in agentpty is the terminal
session; the project id never was one.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "BINARY",
    "JSON",
    "MAX_FRAME",
    "SUBPROTOCOLS",
    "CloseCode",
    "ProtocolError",
    "ServerMessage",
    "choose_subprotocol",
    "closed_frame",
    "error_frame",
    "input_frame",
    "output_frame",
    "parse_server_frame",
    "resize_frame",
    "signal_frame",
    "state_frame",
    "status_frame",
]

#: Largest client frame accepted, in bytes of UTF-8.
MAX_FRAME = 64 * 1024
#: The dialects (``Sec-WebSocket-Protocol`` values); JSON is the default.
JSON = "agentpty.v1.json"
BINARY = "agentpty.v2.binary"
SUBPROTOCOLS = (JSON, BINARY)


def choose_subprotocol(offered: Iterable[str]) -> str | None:
    """The dialect to accept from the client's list (its order wins), or None for plain JSON."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


class CloseCode(IntEnum):
    NORMAL = 1000
    BAD_ID = 4000
    UNAUTHORIZED = 4001
    ORIGIN_REFUSED = 4003
    NOT_FOUND = 4004
    START_FAILED = 4005


class ProtocolError(Exception):
    """A client frame that cannot be used; the connection goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_frame(**fields: Any) -> str:
    return json.dumps({"type": "status", "connected": True, **fields})


def state_frame(fields: Mapping[str, Any]) -> str:
    """The agent's state (``agent_state``, ``state_since``, ``state_detail``, ``question``)."""
    return json.dumps({**fields, "type": "state"})


def output_frame(data: str) -> str:
    # Hot path: one dumps, no model.
    # ensure_ascii=False: box drawing would otherwise cost 6 bytes a character.
    return '{"type":"output","data":' + json.dumps(data, ensure_ascii=False) + "}"


def error_frame(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


def closed_frame(exit_code: int | None) -> str:
    return json.dumps({"type": "closed", "exit_code": exit_code})


# -- the client side


@dataclass(frozen=True)
class ServerMessage:
    """One server frame as a client sees it, whatever the dialect.

    ``data`` holds output as UTF-8 bytes (ready for a terminal); ``fields``
    the other keys of a JSON frame (``pid``, ``code``, ``exit_code``, ...).
    """

    type: str
    data: bytes = b""
    fields: dict[str, Any] = field(default_factory=dict)


def parse_server_frame(frame: str | bytes) -> ServerMessage:
    """Read one server frame: a binary frame is output, a text frame is JSON.

    Raises ``ProtocolError`` for a text frame that is not a JSON object with a ``type``.
    """
    if isinstance(frame, bytes | bytearray | memoryview):
        return ServerMessage("output", bytes(frame))
    try:
        payload = json.loads(frame)
    except ValueError as exc:
        raise ProtocolError("INVALID_JSON", f"server frame is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise ProtocolError("INVALID_MESSAGE", 'expected an object with a "type" field')
    kind = payload.pop("type")
    if kind == "output":
        return ServerMessage("output", str(payload.get("data", "")).encode(errors="replace"))
    return ServerMessage(kind, fields=payload)


def input_frame(data: str) -> str:
    return json.dumps({"type": "input", "data": data})


def resize_frame(rows: int, cols: int) -> str:
    return json.dumps({"type": "resize", "rows": rows, "cols": cols})


def signal_frame(name: str) -> str:
    return json.dumps({"type": "signal", "signal": name})
