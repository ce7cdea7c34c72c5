"""(b) Keystroke echo round trip through the WebSocket.

Typing must feel local: every key goes client → WebSocket → server → PTY →
echo by the terminal's line discipline → PTY read → server → client. With
``cat`` in the foreground the terminal is in canonical mode with echo on,
so each character comes straight back and no shell logic (readline, prompt
redraws) is in the loop. One character is in flight at a time; the clock
runs from sending its input frame to receiving the frame that carries it.

The shell is told ``echo <marker>; cat``: when the marker's output arrives
bash has already handed the terminal back in canonical mode (readline's raw
mode is over), so every character typed from then on is echoed; warm-up
characters absorb ``cat``'s own start.

The limit is the same loop without agentpty: ``cat`` on a fresh
``os.openpty()`` in this process, one character written to the master and
read back (the kernel's echo) at a time. The budgets compare the two medians
of the same run (issue 14): p50 ≤ 2.5 × the direct p50, and p99 ≤ 2 ms.

A third line shows the floor the client itself sets: the same client and
the same one-character round trips against a trivial ``websockets`` echo
server in a process of its own (no PTY, no agentpty).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import string
import subprocess
import sys
import time

from websockets.asyncio.client import connect

from bench.client import Terminal
from bench.context import Bench
from bench.report import Row
from bench.server import PROMPT

__all__ = ["measure"]

BUDGET_P99_MS = 2.0
#: Issue 10: with the session host in the path.
BUDGET_HOSTED_P50_MS = 0.45
BUDGET_HOSTED_P99_MS = 5.0
#: p50 through agentpty over p50 of the direct PTY echo.
BUDGET_P50_RATIO = 2.5
WARM_UP = 50
#: Canonical mode holds at most 4095 characters in one line, and no line is ended.
MAX_SAMPLES = 4000


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def direct_echo(samples: int) -> list[float]:
    """Echo round trips, in ms, of ``cat`` on a PTY read by this process (blocking; a thread)."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            ["cat"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
    finally:
        os.close(slave)
    letters = string.ascii_lowercase.encode()
    times: list[float] = []
    try:
        for n in range(WARM_UP + samples):
            key = letters[n % len(letters) : n % len(letters) + 1]
            sent = time.perf_counter()
            os.write(master, key)
            while key not in os.read(master, 1024):
                pass
            if n >= WARM_UP:
                times.append((time.perf_counter() - sent) * 1000)
    finally:
        process.kill()
        process.wait()
        os.close(master)
    return times


ECHO_SERVER = """
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""


async def floor_echo(samples: int) -> list[float]:
    """Round trips, in ms, of one character through a trivial WebSocket echo server."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_SERVER, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            port = int(await process.stdout.readline())
        times: list[float] = []
        async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None) as ws:
            for n in range(WARM_UP + samples):
                sent = time.perf_counter()
                await ws.send("a")
                await ws.recv()
                if n >= WARM_UP:
                    times.append((time.perf_counter() - sent) * 1000)
        return times
    finally:
        process.kill()
        await process.wait()


async def _round_trip(terminal: Terminal, char: str) -> float:
    start = len(terminal.output)
    sent = time.perf_counter()
    await terminal.type(char)
    await terminal.read_until(char, start=start, timeout=10)
    return (time.perf_counter() - sent) * 1000


async def measure(bench: Bench) -> list[Row]:
    samples = 300 if bench.options.quick else 1000
    assert WARM_UP + samples <= MAX_SAMPLES
    project_id = await bench.server.create_project("echo")
    terminal = await Terminal.attach(bench.server, project_id)
    try:
        await terminal.read_until(PROMPT)
        await terminal.type("echo BENCH_$((6*7))_CAT; cat\r")
        await terminal.read_until("BENCH_42_CAT")
        letters = string.ascii_lowercase
        times: list[float] = []
        for n in range(WARM_UP + samples):
            elapsed = await _round_trip(terminal, letters[n % len(letters)])
            if n >= WARM_UP:
                times.append(elapsed)
        await terminal.type("\x03")
    finally:
        await terminal.close()
        await bench.server.delete_project(project_id)
    direct = sorted(await asyncio.to_thread(direct_echo, samples))
    floor = sorted(await floor_echo(samples))
    f50, f99 = _percentile(floor, 0.50), _percentile(floor, 0.99)
    times.sort()
    p50, p99 = _percentile(times, 0.50), _percentile(times, 0.99)
    d50, d99 = _percentile(direct, 0.50), _percentile(direct, 0.99)
    label = (
        f"(b) keystroke echo p50 / p99 (cat, n={samples}, {terminal.dialect} frames, "
        f"{bench.idle_sessions} idle sessions attached)"
    )
    hosted = (
        [
            Row(
                "(b) keystroke echo p50 / p99, session host in the path",
                f"{p50:.2f} / {p99:.2f} ms",
                f"p50 ≤ {BUDGET_HOSTED_P50_MS:g} ms, p99 ≤ {BUDGET_HOSTED_P99_MS:g} ms",
                p50 <= BUDGET_HOSTED_P50_MS and p99 <= BUDGET_HOSTED_P99_MS,
            )
        ]
        if bench.hosted
        else []
    )
    return [
        Row(
            f"(b) keystroke echo p50 / p99, direct PTY (cat, n={samples})",
            f"{d50 * 1000:.0f} / {d99 * 1000:.0f} µs",
        ),
        Row(
            f"(b) WebSocket round trip p50 / p99, trivial echo server, same client (n={samples})",
            f"{f50 * 1000:.0f} / {f99 * 1000:.0f} µs (the client's own floor)",
        ),
        Row(
            label,
            f"{p50:.2f} / {p99:.2f} ms (mean {statistics.fmean(times):.2f}, max {times[-1]:.2f})",
            f"p99 ≤ {BUDGET_P99_MS:g} ms",
            p99 <= BUDGET_P99_MS,
        ),
        Row(
            "(b) keystroke echo p50 ratio agentpty / direct",
            f"{p50 / d50:.1f} ×",
            f"≤ {BUDGET_P50_RATIO:g} ×",
            p50 / d50 <= BUDGET_P50_RATIO,
        ),
        *hosted,
    ]
