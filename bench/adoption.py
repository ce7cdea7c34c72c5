"""(e) Adoption: a server restarted on a data dir whose host runs the idle fleet.

The first server is stopped with SIGTERM (it detaches: the sessions stay in
the session host); a second one starts on the same data dir and adopts them.
Measured: the adoption itself (the server's own log line, from listing the
host's sessions to every screen rebuilt), and the wall time from starting
the process until every session answers ``running`` with its old pid.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from bench.report import Row
from bench.server import ServerProcess

__all__ = ["measure_restart"]

BUDGET_SECONDS = 2.0
_ADOPTED = re.compile(r"adopted (\d+) of (\d+) session\(s\) from the session host in ([\d.]+) s")


async def measure_restart(workdir: Path, pids: dict[str, int]) -> tuple[list[Row], ServerProcess]:
    """Start the second server; return the rows and the server (the caller stops it)."""
    started = time.perf_counter()
    server = await ServerProcess.start(workdir, restart=True)
    listening = time.perf_counter() - started

    async def adopted(project: str) -> bool:
        response = await server.http.get(f"/api/output-projects/{project}/session")
        info = response.json()
        return bool(info["state"] == "running" and info["pid"] == pids[project])

    results = await asyncio.gather(*(adopted(project) for project in pids))
    attachable = time.perf_counter() - started
    match = _ADOPTED.search(server.log_path.read_text(errors="replace"))
    inside = float(match[3]) if match else float("nan")
    count = sum(results)
    return [
        Row(
            f"(h) adopting {len(pids)} live sessions after a restart (server's own log)",
            f"{inside:.3f} s; {count} of {len(pids)} same pid and running",
            f"≤ {BUDGET_SECONDS:g} s",
            match is not None and inside <= BUDGET_SECONDS and count == len(pids),
        ),
        Row(
            "(e) restart wall time, process start → all sessions attachable",
            f"{attachable:.2f} s (listening after {listening:.2f} s, Python start-up included)",
        ),
    ], server
