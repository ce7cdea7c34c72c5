"""Client → server frames of the terminal protocol, validated (server side).

Kept apart from ``protocol`` because it needs pydantic: a client (``agentpty
attach``) imports ``protocol`` for its frames and should not pay for it.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from agentpty.terminal.protocol import MAX_FRAME, ProtocolError

__all__ = ["InputMessage", "ResizeMessage", "SignalMessage", "parse_client_message"]


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
