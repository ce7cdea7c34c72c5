"""(g) ``agentpty attach``: keystroke echo through it, and its CPU while idle.

The bench is the terminal: ``python -m agentpty attach`` runs on a PTY of its
own (its controlling terminal, in raw mode once attached), so every key goes
bench → PTY → attach → WebSocket → server → the session's PTY → echo by its
line discipline → server → WebSocket → attach → PTY → bench. As in (b),
``cat`` runs in the session in canonical mode, one character is in flight at
a time, and the clock runs from writing the key to the PTY master until the
key comes back out of it.

Then, with the session idle (``cat`` waiting) and attach still attached, the
attach process's own CPU time (``/proc/<pid>/stat``) over the idle window:
it must wait on events, never poll.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import statistics
import string
import sys
import termios
import time

from bench.context import Bench
from bench.report import Row
from bench.server import PROMPT, cpu_seconds

__all__ = ["measure"]

BUDGET_P50_MS = 1.0
BUDGET_IDLE_PERCENT = 0.1
WARM_UP = 50


def _take_terminal() -> None:
    # In the child, after setsid: the PTY on stdin becomes its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _AttachedPty:
    """``agentpty attach`` on a PTY whose master this class reads and writes."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        termios.tcsetwinsize(self.master, (24, 120))
        os.set_blocking(self.master, False)
        self.output = bytearray()
        self.changed = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.master, self._on_output)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, bench: Bench, project_id: str) -> None:
        server = bench.server
        env = {**os.environ, "AGENTPTY_TOKEN": server.token, "AGENTPTY_URL": server.base_url}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentpty",
            "attach",
            project_id,
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )

    def _on_output(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(self.master)
        self.output += data
        self.changed.set()

    async def read_until(self, text: bytes, start: int = 0, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while self.output.find(text, start) < 0:
                start = max(start, len(self.output) - len(text) + 1)
                self.changed.clear()
                await self.changed.wait()

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.type(b"\x03\x1cd")  # end cat, then detach
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


async def measure(bench: Bench) -> list[Row]:
    samples = 300 if bench.options.quick else 1000
    window = 5.0 if bench.options.quick else 15.0
    project_id = await bench.server.create_project("attach")
    term = _AttachedPty()
    try:
        await term.start(bench, project_id)
        await term.read_until(PROMPT.encode())
        term.type(b"echo BENCH_$((6*7))_ATTACH; cat\r")
        await term.read_until(b"BENCH_42_ATTACH")
        letters = string.ascii_lowercase.encode()
        times: list[float] = []
        for n in range(WARM_UP + samples):
            key = letters[n % len(letters) : n % len(letters) + 1]
            start = len(term.output)
            sent = time.perf_counter()
            term.type(key)
            await term.read_until(key, start=start, timeout=10)
            if n >= WARM_UP:
                times.append((time.perf_counter() - sent) * 1000)
        assert term.process is not None
        pid = term.process.pid
        await asyncio.sleep(1.0)  # settle: the last echo's writes are done
        cpu_start, wall_start = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(window)  # the idle window itself
        idle_cpu = cpu_seconds(pid) - cpu_start
        wall = time.perf_counter() - wall_start
    finally:
        await term.close()
        await bench.server.delete_project(project_id)
    times.sort()
    p50 = times[max(1, math.ceil(0.5 * len(times))) - 1]
    p99 = times[max(1, math.ceil(0.99 * len(times))) - 1]
    percent = idle_cpu / wall * 100
    return [
        Row(
            f"(g) keystroke echo through `agentpty attach` p50 / p99 (cat, n={samples}, "
            f"{bench.idle_sessions} idle sessions attached)",
            f"{p50:.2f} / {p99:.2f} ms (mean {statistics.fmean(times):.2f}, max {times[-1]:.2f})",
            f"p50 ≤ {BUDGET_P50_MS:g} ms",
            p50 <= BUDGET_P50_MS,
        ),
        Row(
            f"(g) `agentpty attach` CPU while its session is idle, {window:g} s",
            f"{percent:.2f} % of one core ({idle_cpu:.2f} s CPU)",
            f"≤ {BUDGET_IDLE_PERCENT:g} %",
            percent <= BUDGET_IDLE_PERCENT,
        ),
    ]
