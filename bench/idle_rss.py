"""(d) Server (and session host) memory per idle attached session.

Every session holds a PTY, a screen model with scrollback, a subscriber and
a WebSocket connection; a server that keeps one per project
for days must keep them small. The server's ``VmRSS`` after start-up and
one warm-up request (before any session) is compared with its ``VmRSS``
once the fleet is attached and idle; the growth is divided by the fleet size.
"""

from __future__ import annotations

from bench.context import Bench
from bench.host import host_pss_mib
from bench.report import Row

__all__ = ["measure"]

#: Issue 14 (was 2 MiB).
BUDGET_KIB = 64
#: Server growth plus the whole session host (started for the fleet), per session.
BUDGET_WITH_HOST_MIB = 1.0


async def measure(bench: Bench) -> list[Row]:
    fleet = await bench.idle_fleet()
    after = bench.server.rss_mib()
    per_session = (after - bench.baseline_rss_mib) * 1024 / fleet.size
    host_mib, host_processes, split = host_pss_mib(bench.server.data_dir)
    with_host = per_session / 1024 + host_mib / fleet.size
    return [
        Row(
            f"(d) server RSS per idle attached session ({fleet.size} sessions)",
            f"{per_session:.0f} KiB ({bench.baseline_rss_mib:.1f} → {after:.1f} MiB)",
            f"≤ {BUDGET_KIB:g} KiB",
            per_session <= BUDGET_KIB,
        ),
        Row(
            f"(d) server + session host memory per idle session ({fleet.size} sessions)",
            f"{with_host:.2f} MiB (host: {host_processes} processes, PSS {host_mib:.1f} MiB: "
            f"{split})",
            f"≤ {BUDGET_WITH_HOST_MIB:g} MiB",
            with_host <= BUDGET_WITH_HOST_MIB,
        ),
    ]
