"""The session host of the benchmark's data dir: its processes' memory, and clean-up.

The host (daemon, zygote, one keeper per session) is where agents live, so
its memory counts with the server's in the per-session budget. Memory is
PSS (``/proc/<pid>/smaps_rollup``): the keepers share most of their pages
with the zygote, and PSS counts each shared page once across them. The
output rings are memfds no process maps (both sides ``pwrite``), so no PSS
shows them: their allocated pages are added, each ring once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from agentpty.host.client import host_pid, kill_host, stop_all

__all__ = ["host_processes", "host_pss_mib", "stop_host"]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def host_processes(data_dir: Path) -> list[int]:
    """The host daemon, its zygote and the keepers (not the agents), or [] if none runs."""
    daemon = host_pid(data_dir / "run")
    if daemon is None:
        return []
    zygotes = _children(daemon)
    return [daemon, *zygotes, *(k for z in zygotes for k in _children(z))]


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def host_pss_mib(data_dir: Path) -> tuple[float, int, str]:
    """Total PSS of the host's processes in MiB, how many processes that is, and
    where it goes (daemon, zygote, keepers' mean) as text."""
    pids = host_processes(data_dir)
    pss = [_pss_kib(pid) for pid in pids]
    if len(pss) < 2:
        return sum(pss) / 1024, len(pids), ""
    keepers = pss[2:]
    mean = sum(keepers) / len(keepers) if keepers else 0.0
    rings = _ring_kib(pids[0])
    split = (
        f"daemon {pss[0] / 1024:.1f} MiB, zygote {pss[1] / 1024:.1f} MiB, "
        f"keeper {mean:.0f} KiB, rings {rings:.0f} KiB"
    )
    return (sum(pss) + rings) / 1024, len(pids), split


def _ring_kib(daemon: int) -> float:
    """Pages allocated to the output rings the daemon holds (memfds, counted by inode)."""
    sizes: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{daemon}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith("/memfd:agentpty-ring"):
                    stat = fd.stat()
                    sizes[stat.st_ino] = stat.st_blocks * 512
    return sum(sizes.values()) / 1024


async def stop_host(data_dir: Path) -> None:
    """Stop every session the benchmark left in the host, then end the host."""
    with contextlib.suppress(Exception):
        await stop_all(data_dir / "run", reason="benchmark done")
    kill_host(data_dir / "run")
