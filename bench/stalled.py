"""(e) A viewer that stops reading while the agent floods output.

A browser tab in the background, a laptop lid closed mid-flood: the viewer's
socket stops draining while the agent keeps printing. The server must not
buffer that output for it (it would grow without bound, or by the size of
every buffer in the way) nor slow the viewers that do read.

Two passes of the same flood (``yes`` for a fixed time) with one reading
viewer attached: the first alone, which also brings the allocator to its
steady state for a flood; the second with a stalled viewer attached too
(a raw socket with a 4 KiB receive buffer that does the WebSocket handshake
and then reads nothing). The
server's ``VmRSS`` is sampled during the second pass; the growth is its
peak minus ``VmRSS`` right before it. The reading viewer's rate in the
second pass is compared with the first. At the end the stalled viewer
reads again and must be resynchronised: a snapshot (starting with a terminal
reset) that shows the end marker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import statistics
import time
from dataclasses import dataclass

from agentpty.terminal.protocol import BINARY, parse_server_frame
from bench.client import Terminal
from bench.context import Bench
from bench.report import Row
from bench.server import PROMPT, ServerProcess

__all__ = ["measure"]

BUDGET_GROWTH_MIB = 1.0
#: The reading viewer's rate with a stalled viewer attached, over its rate alone.
BUDGET_RATE_RATIO = 0.85
FLOOD = "timeout {seconds} yes $(printf %098d 0); echo BENCH_$((6*7))_STALL_{run}"
SAMPLE_SECONDS = 0.05
RESET = b"\x1bc"
#: The reset as a JSON string escapes it (a server without the binary dialect).
RESET_JSON = b"\\u001bc"


async def _flood(terminal: Terminal, seconds: float, run: int) -> tuple[int, float]:
    """Run the flood; return the bytes the viewer got and the seconds it took."""
    marker = f"BENCH_42_STALL_{run}".encode()
    received = 0
    tail = b""
    started = time.perf_counter()
    await terminal.type(FLOOD.format(seconds=seconds, run=run) + "\r")
    async with asyncio.timeout(seconds + 120):
        while True:
            frame = parse_server_frame(await terminal.ws.recv())
            if frame.type != "output":
                continue
            received += len(frame.data)
            if marker in tail + frame.data:
                break
            tail = frame.data[-len(marker) :]
    elapsed = time.perf_counter() - started
    # The prompt after the marker may be in the frame that carried it.
    terminal.output = terminal.decode(tail + frame.data)
    await terminal.read_until(PROMPT, start=terminal.output.index(marker.decode()))
    return received, elapsed


def _stalled_viewer(server: ServerProcess, project_id: str) -> socket.socket:
    """Open the terminal WebSocket on a raw socket and return it unread (blocking; a thread).

    No client library sits in between: one that keeps reading into its own
    queue would hide the stall. The receive buffer is 4 KiB, so the kernel
    holds little of what the server sends.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((server.host, server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/output-projects/{project_id}/terminal?token={server.token} HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {BINARY}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("the server closed the stalled viewer's connection")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return sock


def _resynchronised(sock: socket.socket, marker: bytes) -> bool:
    """Read the stalled viewer's stream until a reset followed by ``marker`` shows up.

    Frames are not parsed: the server's frames are unmasked and uncompressed
    (no extension was offered), and a snapshot is one frame, so the reset
    and the marker after it are contiguous bytes in the stream.
    """
    stream = bytearray()
    reset_at = -1
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return False
        stream += chunk
        if reset_at < 0:
            reset_at = max(stream.find(RESET), stream.find(RESET_JSON))
            if reset_at < 0:
                del stream[: max(0, len(stream) - len(RESET_JSON))]
                continue
            del stream[:reset_at]
            reset_at = 0
        if stream.find(marker) >= 0:
            return True


async def _sample_peak(bench: Bench, peak: list[float]) -> None:
    """Keep the highest VmRSS seen in ``peak[0]`` until cancelled (a measurement, not a wait)."""
    while True:
        peak[0] = max(peak[0], bench.server.rss_mib())
        await asyncio.sleep(SAMPLE_SECONDS)


@dataclass(frozen=True)
class Pass:
    rate: float  # bytes per second the reading viewer got
    growth: float  # peak VmRSS during the flood minus VmRSS before it, MiB


async def _pass(bench: Bench, viewer: Terminal, seconds: float, run: int) -> Pass:
    before = bench.server.rss_mib()
    peak = [before]
    sampler = asyncio.get_running_loop().create_task(_sample_peak(bench, peak))
    try:
        received, elapsed = await _flood(viewer, seconds, run)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    peak[0] = max(peak[0], bench.server.rss_mib())
    return Pass(received / elapsed, peak[0] - before)


async def measure(bench: Bench) -> list[Row]:
    seconds = 2.0 if bench.options.quick else 5.0
    rounds = 1 if bench.options.quick else 3
    server = bench.server
    project_id = await server.create_project("stalled")
    viewer = await Terminal.attach(server, project_id)
    alone: list[Pass] = []
    stalled_passes: list[Pass] = []
    resynced: list[bool] = []
    try:
        await viewer.read_until(PROMPT)
        await _flood(viewer, seconds, 0)  # warm-up: the allocator's steady state for a flood
        for n in range(rounds):
            alone.append(await _pass(bench, viewer, seconds, 2 * n + 1))
            stalled = await asyncio.to_thread(_stalled_viewer, server, project_id)
            try:
                stalled_passes.append(await _pass(bench, viewer, seconds, 2 * n + 2))
                # Reading again: the backlog was dropped, a snapshot shows the screen.
                marker = f"BENCH_42_STALL_{2 * n + 2}".encode()
                resynced.append(await asyncio.to_thread(_resynchronised, stalled, marker))
            finally:
                stalled.close()
    finally:
        await viewer.close()
        await server.delete_project(project_id)
    growth = statistics.median(p.growth for p in stalled_passes)
    ratio = statistics.median(s.rate / a.rate for s, a in zip(stalled_passes, alone, strict=True))
    growths = ", ".join(f"{p.growth:+.2f}" for p in stalled_passes)
    return [
        Row(
            f"(e) server RSS growth, one viewer stalled {seconds:g} s during a flood "
            f"(median of {rounds})",
            f"{growth:+.2f} MiB (runs: {growths}; without the stalled viewer: "
            f"{', '.join(f'{p.growth:+.2f}' for p in alone)}); "
            f"resynchronised afterwards: {sum(resynced)} of {rounds}",
            f"≤ {BUDGET_GROWTH_MIB:g} MiB, resynchronised",
            growth <= BUDGET_GROWTH_MIB and all(resynced),
        ),
        Row(
            f"(e) reading viewer's rate with a stalled viewer / alone (median of {rounds} pairs)",
            f"{ratio:.2f} (with: {', '.join(f'{p.rate / 1e6:.1f}' for p in stalled_passes)}; "
            f"alone: {', '.join(f'{p.rate / 1e6:.1f}' for p in alone)} MB/s)",
            f"≥ {BUDGET_RATE_RATIO:g}",
            ratio >= BUDGET_RATE_RATIO,
        ),
    ]
