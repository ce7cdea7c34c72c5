"""Output is decoded once per session, incrementally: split characters survive."""

from __future__ import annotations

import asyncio
import itertools
import sys

from hypothesis import given
from hypothesis import strategies as st

from agentpty.terminal.session import TerminalSession
from tests.helpers import timeout


@given(text=st.text(min_size=1, max_size=200), cuts=st.lists(st.integers(0, 800), max_size=10))
def test_characters_split_across_reads_arrive_intact(text: str, cuts: list[int]) -> None:
    """Any UTF-8 text cut into reads at arbitrary byte offsets decodes to the same text."""
    data = text.encode()
    offsets = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    session = TerminalSession("k", ["true"], cwd="/", env={})
    received: list[str] = []
    session.add_output_listener(received.append)

    async def feed() -> None:
        session._loop = asyncio.get_running_loop()
        for start, end in itertools.pairwise(offsets):
            session._on_bytes(data[start:end])
        session._flush()

    asyncio.run(feed())
    assert "".join(received) == text


async def test_split_multibyte_character_through_a_real_pty() -> None:
    """A character whose bytes the child writes in two writes reaches subscribers whole."""
    script = (
        "import os,sys,time;b='é€😀'.encode();"
        "os.write(1,b[:1]);time.sleep(0.05);os.write(1,b[1:4]);time.sleep(0.05);os.write(1,b[4:])"
    )
    session = TerminalSession("k", [sys.executable, "-c", script], cwd="/", env={})
    subscriber, _ = session.subscribe()
    session.start()
    received = ""
    async with asyncio.timeout(timeout(10)):
        while True:
            frame = await subscriber.get()
            if frame.kind == "closed":
                break
            received += frame.text
    assert "é€😀" in received
    assert "\ufffd" not in received
