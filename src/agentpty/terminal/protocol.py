"""The WebSocket terminal protocol: JSON text frames, parsed and built here.

I/O free. client → server: ``input``, ``resize``, ``signal``.
server → client: ``status``, ``output``, ``error``, ``closed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

__all__ = [
    "MAX_FRAME",
    "CloseCode",
    "InputMessage",
    "ProtocolError",
    "ResizeMessage",
    "SignalMessage",
    "closed_frame",
    "error_frame",
    "output_frame",
    "parse_client_message",
    "state_frame",
    "status_frame",
]

#: Largest client frame accepted, in bytes of UTF-8.
MAX_FRAME = 64 * 1024


class CloseCode(IntEnum):
    NORMAL = 1000
    BAD_ID = 4000
    UNAUTHORIZED = 4001
    ORIGIN_REFUSED = 4003
    NOT_FOUND = 4004
    START_FAILED = 4005


class InputMessage(BaseModel):
    type: Literal["input"]
    data: str


class ResizeMessage(BaseModel):
    type: Literal["resize"]
    rows: Annotated[int, Field(ge=1, le=1000)]
    cols: Annotated[int, Field(ge=1, le=1000)]


class SignalMessage(BaseModel):
    type: Literal["signal"]
    signal: Literal["SIGINT", "SIGTERM", "EOF"]


ClientMessage = Annotated[InputMessage | ResizeMessage | SignalMessage, Field(discriminator="type")]
_client_adapter: TypeAdapter[InputMessage | ResizeMessage | SignalMessage] = TypeAdapter(
    ClientMessage
)


class ProtocolError(Exception):
    """A client frame that cannot be used; the connection goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_client_message(raw: str | bytes) -> InputMessage | ResizeMessage | SignalMessage:
    """Decode one client frame or raise ``ProtocolError`` saying what is wrong."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_FRAME:
        raise ProtocolError(
            "FRAME_TOO_LARGE",
            f"frame of {size} bytes exceeds {MAX_FRAME}; split input into smaller frames",
        )
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("INVALID_JSON", f"frame is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or "type" not in payload:
        raise ProtocolError("INVALID_MESSAGE", 'expected an object with a "type" field')
    kind = payload["type"]
    if kind not in ("input", "resize", "signal"):
        raise ProtocolError(
            "UNKNOWN_TYPE", f"unknown message type {kind!r}; use input, resize or signal"
        )
    try:
        return _client_adapter.validate_python(payload)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'message'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ProtocolError("INVALID_MESSAGE", f"invalid {kind} message: {details}") from exc


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
