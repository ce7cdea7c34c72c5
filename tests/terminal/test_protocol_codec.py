"""The protocol's client-side codec and dialect choice (I/O free)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentpty.terminal.client_messages import parse_client_message
from agentpty.terminal.protocol import (
    BINARY,
    JSON,
    ProtocolError,
    choose_subprotocol,
    closed_frame,
    input_frame,
    output_frame,
    parse_server_frame,
    resize_frame,
    signal_frame,
    status_frame,
)
from agentpty.terminal.subscriber import complete_utf8


def test_dialect_choice_follows_the_clients_order() -> None:
    """The first dialect the server knows wins; nothing known means plain JSON (None)."""
    assert choose_subprotocol([BINARY, JSON]) == BINARY
    assert choose_subprotocol(["x", JSON, BINARY]) == JSON
    assert choose_subprotocol(["x"]) is None
    assert choose_subprotocol([]) is None


@given(text=st.text(max_size=200))
def test_output_reads_the_same_in_both_dialects(text: str) -> None:
    """A JSON output frame and a binary frame of the same text give the same bytes."""
    assert parse_server_frame(output_frame(text)).data == text.encode(errors="replace")
    assert parse_server_frame(text.encode(errors="replace")).data == text.encode(errors="replace")


def test_control_frames_keep_their_fields() -> None:
    """status and closed frames come back with their type and fields."""
    status = parse_server_frame(status_frame(pid=7, state="running"))
    assert status.type == "status" and status.fields["pid"] == 7
    closed = parse_server_frame(closed_frame(3))
    assert closed.type == "closed" and closed.fields == {"exit_code": 3}


@pytest.mark.parametrize("frame", ["not json", "[1]", '{"no": "type"}'])
def test_bad_server_frames_raise(frame: str) -> None:
    """A text frame that is not a typed JSON object is a ProtocolError."""
    with pytest.raises(ProtocolError):
        parse_server_frame(frame)


def test_client_frames_are_what_the_server_parses() -> None:
    """input, resize and signal built by the codec pass the server's validation."""
    assert parse_client_message(input_frame("ls\r")).type == "input"
    assert json.loads(resize_frame(30, 100)) == {"type": "resize", "rows": 30, "cols": 100}
    assert parse_client_message(signal_frame("SIGINT")).type == "signal"


@given(text=st.text(min_size=1, max_size=50), cut=st.integers(0, 200))
def test_complete_utf8_never_cuts_a_character(text: str, cut: int) -> None:
    """The prefix kept decodes strictly; what is held back is under 4 bytes of one character."""
    data = text.encode()[: max(1, cut)]
    kept = complete_utf8(data)
    data[:kept].decode()  # raises if a character was cut
    assert len(data) - kept < 4
