"""The host protocol's framing: whatever is encoded decodes the same, in any split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentpty.host.codec import (
    HEADER,
    MAX_FRAME,
    Decoder,
    Kind,
    ProtocolError,
    encode_control,
    encode_data,
)

keys = st.text(min_size=0, max_size=40)
payloads = st.binary(max_size=5000)
controls = st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=5)


@given(
    messages=st.lists(
        st.one_of(
            st.tuples(st.sampled_from([Kind.INPUT, Kind.OUTPUT, Kind.RING]), keys, payloads),
            st.tuples(st.sampled_from([Kind.REQUEST, Kind.REPLY, Kind.EVENT]), controls),
        ),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=100000), max_size=8),
)
def test_round_trip_in_any_split(messages: list[tuple], cuts: list[int]) -> None:  # type: ignore[type-arg]
    """Frames fed in arbitrary pieces decode to exactly the messages encoded."""
    stream = b"".join(
        encode_data(m[0], m[1], m[2]) if len(m) == 3 else encode_control(m[0], m[1])
        for m in messages
    )
    decoder = Decoder()
    decoded = []
    start = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        decoded += decoder.feed(stream[start:cut])
        start = max(start, cut)
    expected = [(m[0], (m[1], m[2])) if len(m) == 3 else (m[0], m[1]) for m in messages]
    assert decoded == expected


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (HEADER.pack(MAX_FRAME + 1, Kind.OUTPUT), "exceeds"),
        (HEADER.pack(1, 99) + b"x", "unknown frame kind"),
        (HEADER.pack(1, Kind.OUTPUT) + b"x", "without a key"),
        (HEADER.pack(4, Kind.OUTPUT) + b"\x00\x09ab", "shorter than its key"),
        (HEADER.pack(3, Kind.REQUEST) + b"[1]", "not a JSON object"),
        (HEADER.pack(3, Kind.REQUEST) + b"{x}", "not JSON"),
    ],
)
def test_malformed_frames_are_refused(frame: bytes, error: str) -> None:
    """A malformed frame raises ProtocolError saying what is wrong."""
    with pytest.raises(ProtocolError, match=error):
        Decoder().feed(frame)
