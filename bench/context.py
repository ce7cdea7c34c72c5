"""What the measurements of one run share: the server, the options, the idle fleet.

One server process serves the whole run. Its resident memory is taken once,
right after start-up and a warm-up request, before any session exists: the
baseline of the per-session memory budget. The idle fleet is built by the
first measurement that needs it and stays attached for the rest of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.fleet import Fleet
from bench.server import ServerProcess

__all__ = ["Bench", "Options"]


@dataclass(frozen=True)
class Options:
    quick: bool
    fleet_size: int = 50
    #: Throughput passes (direct and each WebSocket variant); None: 7, or 1 with ``quick``.
    rounds: int | None = None


@dataclass
class Bench:
    server: ServerProcess
    options: Options
    #: VmRSS after start-up and one warm-up request, before any session.
    baseline_rss_mib: float
    fleet: Fleet | None = None

    async def idle_fleet(self) -> Fleet:
        """The attached idle sessions, started on first use."""
        if self.fleet is None:
            self.fleet = await Fleet.start(self.server, self.options.fleet_size)
        return self.fleet

    @property
    def idle_sessions(self) -> int:
        return 0 if self.fleet is None else self.fleet.size

    @property
    def hosted(self) -> bool:
        """True when the server's sessions live in the session host (its budgets apply)."""
        from bench.host import host_processes

        return bool(host_processes(self.server.data_dir))
