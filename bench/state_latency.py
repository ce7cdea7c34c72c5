"""(h) Agent state: from a hook's arrival to an SSE client, with 50 projects.

The idle fleet's 50 projects each report hook events (recorded Claude Code
payloads: ``UserPromptSubmit`` then ``Stop``, so every report is a state
change) through ``POST /api/hooks`` with the project and key in headers,
as Claude Code's http hooks do; one client reads ``GET /api/events``.
Latency is from just before the hook request is sent to the moment the
client has parsed the matching ``state`` event (so it includes the HTTP
request, the store write and the stream). p50/p99 over all reports; budget p99 ≤ 100 ms.

The CPU the state machinery adds to idle sessions is in (c): the idle
fleet's sessions run with it (an output listener that only records a time;
no timer runs without output).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.context import Bench
from bench.report import Row

__all__ = ["measure"]

BUDGET_P99_MS = 100.0
RECORDED = Path(__file__).resolve().parents[1] / "tests/data/claude-hooks-2.1.197/tool.jsonl"


def _payloads() -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    for line in RECORDED.read_text().splitlines():
        data = json.loads(line)
        events.setdefault(data["hook_event_name"], data)
    return events


async def measure(bench: Bench) -> list[Row]:
    fleet = await bench.idle_fleet()
    server = bench.server
    rounds = 4 if bench.options.quick else 10
    payloads = _payloads()
    shells = set(fleet.project_ids)
    projects = [
        await server.create_project(f"hooked {n}", agent="claude") for n in range(fleet.size)
    ]
    arrived: dict[tuple[str, str], float] = {}
    waiting: dict[tuple[str, str], asyncio.Event] = {}
    opened = asyncio.Event()
    settled: set[str] = set()
    all_settled = asyncio.Event()

    async def read_stream() -> None:
        async with server.http.stream("GET", "/api/events", timeout=None) as response:
            name, data = "", ""
            async for line in response.aiter_lines():
                opened.set()  # the stream's first line: a comment with the last id
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    if name == "state":
                        event = json.loads(data)
                        key = (event["project_id"], event["agent_state"])
                        arrived[key] = time.perf_counter()
                        if key in waiting:
                            waiting[key].set()
                        if event["agent_state"] == "idle":
                            settled.add(event["project_id"])
                            if settled >= shells:
                                all_settled.set()
                    name, data = "", ""

    reader = asyncio.get_running_loop().create_task(read_stream())
    latencies: list[float] = []
    try:
        await asyncio.wait_for(opened.wait(), 30)  # the stream is open before the first report
        # The shells' own screen-driven states must have settled (idle), or a
        # late "quiet: idle" would overtake a hook report below.
        listed = (await server.http.get("/api/output-projects?limit=1000")).json()
        settled.update(p["id"] for p in listed["output_projects"] if p["agent_state"] == "idle")
        if not settled >= shells:
            await asyncio.wait_for(all_settled.wait(), 60)
        for _ in range(rounds):
            for event, state in (("UserPromptSubmit", "working"), ("Stop", "idle")):
                for project in projects:
                    key = (project, state)
                    arrived.pop(key, None)
                    waiting[key] = asyncio.Event()
                    hook_key = hmac.new(
                        server.token.encode(), project.encode(), hashlib.sha256
                    ).hexdigest()
                    sent = time.perf_counter()
                    response = await server.http.post(
                        "/api/hooks",
                        headers={"X-Agentpty-Project": project, "X-Agentpty-Hook-Key": hook_key},
                        json=payloads[event],
                    )
                    response.raise_for_status()
                    await asyncio.wait_for(waiting[key].wait(), 10)
                    latencies.append((arrived[key] - sent) * 1000)
    finally:
        reader.cancel()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return [
        Row(
            f"(h) hook → SSE client, {len(projects)} projects, {len(latencies)} state changes",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms",
            f"p99 ≤ {BUDGET_P99_MS:g} ms",
            p99 <= BUDGET_P99_MS,
        )
    ]
