"""(f) Attach to first screen with a full scrollback.

A tab opened on a session that has printed a lot must show it at once: the
server sends a snapshot (scrollback and screen as ANSI text) right after the
status. The session prints 1,200 coloured lines first (the scrollback keeps
the last 1,000), a first attach lets the screen model catch up, then each
round opens a new connection and times it from the start of the WebSocket
handshake to the arrival of the snapshot frame; the median counts.
"""

from __future__ import annotations

import statistics
import time

from agentpty.terminal.protocol import parse_server_frame
from bench.client import Terminal
from bench.context import Bench
from bench.report import Row
from bench.server import PROMPT

__all__ = ["measure"]

BUDGET_MS = 20.0
LINES = 1200
#: Coloured, so the snapshot carries SGR sequences as an agent's output does.
PRINT = (
    f'seq 1 {LINES} | awk \'{{printf "\\033[32mline %d\\033[0m \\033[1m%s\\033[0m\\n", '
    '$1, "the quick brown fox jumps over the lazy dog"}\'; echo BENCH_$((6*7))_ATTACH'
)


async def measure(bench: Bench) -> list[Row]:
    rounds = 5 if bench.options.quick else 15
    server = bench.server
    project_id = await server.create_project("attach")
    first = await Terminal.attach(server, project_id)
    times: list[float] = []
    size = 0
    try:
        await first.read_until(PROMPT)
        await first.type(PRINT + "\r")
        await first.read_until("BENCH_42_ATTACH")
        await first.read_until(PROMPT, start=first.output.index("BENCH_42_ATTACH"))
        for _ in range(rounds + 1):
            started = time.perf_counter()
            terminal = await Terminal.attach(server, project_id)
            try:
                while (frame := parse_server_frame(await terminal.ws.recv())).type != "output":
                    pass
                elapsed = (time.perf_counter() - started) * 1000
            finally:
                await terminal.close()
            if b"line 1000" not in frame.data:
                raise RuntimeError("the snapshot does not hold the scrollback")
            size = len(frame.data)
            times.append(elapsed)
    finally:
        await first.close()
        await server.delete_project(project_id)
    times = times[1:]  # the first attach also runs the screen model over the output
    median = statistics.median(times)
    return [
        Row(
            f"(f) attach to first screen, {LINES} lines printed (median of {rounds})",
            f"{median:.1f} ms (max {max(times):.1f}; snapshot {size / 1024:.0f} KiB)",
            f"≤ {BUDGET_MS:g} ms",
            median <= BUDGET_MS,
        )
    ]
