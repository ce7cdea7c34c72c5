"""The terminal WebSocket's two dialects and a stalled viewer, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import pytest
from websockets.typing import Subprotocol

from agentpty.terminal.protocol import BINARY, JSON, input_frame, parse_server_frame
from agentpty.terminal.session import SessionLimits
from tests.helpers import RunningServer, timeout

#: Prints "été-42" as UTF-8 whatever the shell's locale.
PRINT_ETE = "printf '\\303\\251t\\303\\251-%d\\n' $((40+2))\r"


async def test_binary_dialect_sends_output_as_raw_bytes(server: RunningServer) -> None:
    """Offering agentpty.v2.binary gets binary output frames (UTF-8) and JSON control frames."""
    project = await server.create_project()
    async with server.terminal(project, subprotocols=[Subprotocol(BINARY)]) as term:
        assert term.ws.subprotocol == BINARY
        status = parse_server_frame(await term.ws.recv())
        assert status.type == "status" and status.fields["pid"]
        snapshot = await term.ws.recv()
        assert isinstance(snapshot, bytes)
        await term.ws.send(input_frame(PRINT_ETE))
        received = b""
        async with asyncio.timeout(timeout(10)):
            while "été-42\r\n".encode() not in received:
                frame = await term.ws.recv()
                if isinstance(frame, str):
                    # Control frames stay JSON text: the agent state (h12) comes as they change.
                    kind = parse_server_frame(frame).type
                    assert kind == "state", f"output in a text frame: {frame!r}"
                    continue
                received += frame


@pytest.mark.parametrize("offered", [None, [JSON], ["some.other.protocol"]])
async def test_json_is_the_default_dialect(
    server: RunningServer, offered: list[str] | None
) -> None:
    """Without the binary dialect (nothing, JSON, or an unknown name offered) output is JSON."""
    project = await server.create_project()
    subprotocols = None if offered is None else [Subprotocol(name) for name in offered]
    async with server.terminal(project, subprotocols=subprotocols) as term:
        assert term.ws.subprotocol == (JSON if offered == [JSON] else None)
        assert (await term.recv())["type"] == "status"
        await term.type(PRINT_ETE)
        await term.read_until("été-42")


def _raw_viewer(server: RunningServer, project: str) -> socket.socket:
    """A WebSocket handshake on a raw socket with a 4 KiB receive buffer; nothing is read after.

    No client library: one that keeps reading into its own queue would hide the stall.
    """
    host, port = "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(timeout(30))
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/output-projects/{project}/terminal?token={server.token} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {BINARY}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed the connection during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until_resync(sock: socket.socket, marker: bytes) -> None:
    """Read the raw stream until a terminal reset (a resync snapshot) and then ``marker``.

    Server frames are unmasked and uncompressed here, and a snapshot is one
    frame, so both are contiguous bytes of the stream.
    """
    stream = b""
    while True:
        chunk = sock.recv(1 << 20)
        assert chunk, "the connection closed before the resync"
        stream = stream[-64:] + chunk if b"\x1bc" not in stream else stream + chunk
        reset = stream.find(b"\x1bc")
        if reset >= 0 and marker in stream[reset:]:
            return


async def test_stalled_viewer_is_resynced_and_the_other_keeps_receiving(
    server: RunningServer,
) -> None:
    """A viewer whose socket stops draining holds a bounded backlog, then gets a snapshot;
    the reading viewer gets every line meanwhile."""
    # 1 MiB, not the default 256 KiB: on a loaded machine the reading viewer
    # (served by this same event loop) can fall 256 KiB behind for a moment.
    # The 16 MB of output still overflow the stalled one many times over.
    limits = SessionLimits(subscriber_backlog=1024 * 1024)
    server.services.sessions.limits = limits
    project = await server.create_project()
    async with server.terminal(project, subprotocols=[Subprotocol(BINARY)]) as viewer:
        await viewer.ws.recv()  # status
        stalled = await asyncio.to_thread(_raw_viewer, server, project)
        try:
            await viewer.ws.send(input_frame("seq 1 2000000; echo DONE-$((7*6))\r"))
            received = bytearray()
            async with asyncio.timeout(timeout(60)):
                while b"DONE-42" not in received[-200:]:
                    frame = await viewer.ws.recv()
                    if isinstance(frame, bytes):
                        received += frame
            assert b"\n1999999\r\n2000000\r\n" in received
            assert b"\n1234567\r\n" in received
            live = server.services.sessions.current(project)
            assert live is not None
            subscribers = live.terminal._subscribers
            assert any(sub.resyncs for sub in subscribers)
            # However long the stall, what waits for it stays within the limit.
            assert all(sub.backlog <= limits.subscriber_backlog for sub in subscribers)
            await asyncio.to_thread(_read_until_resync, stalled, b"DONE-42")
        finally:
            stalled.close()
