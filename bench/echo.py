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
"""

from __future__ import annotations

import math
import statistics
import string
import time

from bench.client import Terminal
from bench.context import Bench
from bench.report import Row
from bench.server import PROMPT

__all__ = ["measure"]

BUDGET_P99_MS = 5.0
BUDGET_P50_MS = 0.45
WARM_UP = 50
#: Canonical mode holds at most 4095 characters in one line, and no line is ended.
MAX_SAMPLES = 4000


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


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
    times.sort()
    p50, p99 = _percentile(times, 0.50), _percentile(times, 0.99)
    label = (
        f"(b) keystroke echo p50 / p99 (cat, n={samples}, "
        f"{bench.idle_sessions} idle sessions attached)"
    )
    return [
        Row(
            label,
            f"{p50:.2f} / {p99:.2f} ms (mean {statistics.fmean(times):.2f}, max {times[-1]:.2f})",
            f"p50 ≤ {BUDGET_P50_MS:g} ms, p99 ≤ {BUDGET_P99_MS:g} ms",
            p50 <= BUDGET_P50_MS and p99 <= BUDGET_P99_MS,
        )
    ]
