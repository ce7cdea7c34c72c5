"""The host protocol's framing, with no I/O: bytes in, messages out, and back.

A frame is a 5-byte header (payload length, big-endian u32; kind, u8) and
the payload. Control messages (requests, replies, events) carry a JSON
object; terminal data (input, output, the replayed ring) carries a
length-prefixed key and raw bytes, so output is never re-encoded. Nothing
here assumes the transport: the same frames work over a Unix socket or TCP.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

__all__ = ["MAX_FRAME", "Decoder", "Kind", "ProtocolError", "encode_control", "encode_data"]

HEADER = struct.Struct(">IB")
KEY_LEN = struct.Struct(">H")
#: Larger frames are refused: a peer sending one is broken or hostile.
MAX_FRAME = 16 * 1024 * 1024


class Kind(IntEnum):
    REQUEST = 1  # JSON {"id", "op", ...}
    REPLY = 2  # JSON {"id", "ok": true, ...} or {"id", "error": "..."}
    EVENT = 3  # JSON {"event", "key", ...}
    INPUT = 4  # key + bytes for the agent
    OUTPUT = 5  # key + bytes the agent printed
    RING = 6  # key + bytes of recent output, replayed on attach


DATA_KINDS = frozenset({Kind.INPUT, Kind.OUTPUT, Kind.RING})


class ProtocolError(ValueError):
    """The peer sent something that is not a valid frame; the connection must close."""


def encode_control(kind: Kind, message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(payload), kind) + payload


def encode_data(kind: Kind, key: str, data: bytes) -> bytes:
    raw_key = key.encode()
    size = KEY_LEN.size + len(raw_key) + len(data)
    return b"".join((HEADER.pack(size, kind), KEY_LEN.pack(len(raw_key)), raw_key, data))


Message = tuple[Kind, Any]


#: Kinds by their byte (a dict lookup: the enum's own call costs more per frame).
_KINDS = {int(kind): kind for kind in Kind}


class Decoder:
    """Turns a byte stream into messages.

    ``feed`` returns complete messages: ``(kind, dict)`` for control frames,
    ``(kind, (key, bytes))`` for data frames. Raises ``ProtocolError`` on a
    malformed stream (the caller closes the connection).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        # Every keystroke and every output read crosses here, usually as whole
        # frames: those are parsed from ``data`` itself, and only a frame cut by
        # the transport waits in the buffer (one copy fewer per frame).
        if self._buffer:
            self._buffer += data
            source: bytes | bytearray = self._buffer
        else:
            source = data
        messages: list[Message] = []
        length = len(source)
        offset = 0
        while length - offset >= HEADER.size:
            size, raw_kind = HEADER.unpack_from(source, offset)
            if size > MAX_FRAME:
                raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            end = offset + HEADER.size + size
            if length < end:
                break
            messages.append(_message(raw_kind, source, offset + HEADER.size, end))
            offset = end
        if source is self._buffer:
            del self._buffer[:offset]
        elif offset < length:
            self._buffer += memoryview(data)[offset:]
        return messages


def _message(raw_kind: int, source: bytes | bytearray, start: int, end: int) -> Message:
    """The message in ``source[start:end]``, a frame's payload."""
    kind = _KINDS.get(raw_kind)
    if kind is None:
        raise ProtocolError(f"unknown frame kind {raw_kind}")
    if kind in DATA_KINDS:
        if end - start < KEY_LEN.size:
            raise ProtocolError("data frame without a key")
        (key_len,) = KEY_LEN.unpack_from(source, start)
        key_end = start + KEY_LEN.size + key_len
        if end < key_end:
            raise ProtocolError("data frame shorter than its key")
        try:
            key = source[start + KEY_LEN.size : key_end].decode()
        except UnicodeDecodeError:
            raise ProtocolError("data frame key is not UTF-8") from None
        return kind, (key, bytes(source[key_end:end]))
    try:
        message = json.loads(source[start:end])
    except ValueError:
        raise ProtocolError("control frame is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("control frame is not a JSON object")
    return kind, message
