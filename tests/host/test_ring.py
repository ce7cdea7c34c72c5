"""The shared output ring: the last bytes appended, by either side, in order."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentpty.host.ring import SharedRing


@given(
    capacity=st.integers(min_value=1, max_value=64),
    chunks=st.lists(st.tuples(st.booleans(), st.binary(max_size=100)), max_size=30),
)
def test_holds_the_last_bytes_whoever_appends(
    capacity: int, chunks: list[tuple[bool, bytes]]
) -> None:
    """Two writers taking turns (the host, then a server, as a lease passes): one stream."""
    host = SharedRing.create(capacity)
    server = SharedRing.open(os.dup(host.fd))
    try:
        stream = b""
        for by_server, data in chunks:
            writer = server if by_server else host
            writer.reload()  # a writer takes over where the other one stopped
            writer.append(data)
            stream += data
        assert host.contents() == stream[-capacity:]
        assert server.contents() == host.contents()
        assert host.head == len(stream)
    finally:
        host.close()
        server.close()


def test_refuses_what_is_not_a_ring() -> None:
    fd = os.memfd_create("empty")
    with pytest.raises(ValueError, match="not a ring"):
        SharedRing.open(fd)
    with pytest.raises(ValueError, match="positive"):
        SharedRing.create(0)
