"""Finding and killing every process of a session: a cgroup v2 where we may create one,
else the tree under the session's keeper (a child subreaper, so no orphan leaves it).

Linux only (``/proc``, cgroup v2); the host is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

__all__ = ["Cgroups", "descendants", "find_cgroup2_root", "kill_all", "signal_terminal"]

log = logging.getLogger(__name__)


def find_cgroup2_root(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """Where cgroup v2 is mounted (the unified tree of a hybrid system too), or None."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> ..."
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split(" ")[4])
    return None


def signal_terminal(master: int, leader: int, sig: int) -> None:
    """Signal a terminal's processes as the keyboard would.

    SIGINT goes to the foreground job only, as Ctrl-C does: an interactive
    shell running a job learns of the interrupt from the job, as it would at
    a keyboard, instead of being interrupted itself as well. Other signals
    go to the leader's group and the foreground job. Falls back to the
    leader's group when the terminal has no foreground job.
    """
    try:
        foreground = os.tcgetpgrp(master)
    except OSError:
        foreground = 0
    groups = {foreground} if sig == signal.SIGINT and foreground > 0 else {leader, foreground}
    # Never our own group (killpg(0) would mean it): only the child's session.
    groups -= {0, os.getpgrp()}
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


class Cgroups:
    """One cgroup v2 directory per session under ``<root>/agentpty/host-<pid>``."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def create(cls) -> Cgroups | None:
        """A usable cgroup base for this host, or None (then the tree walk is used)."""
        root = find_cgroup2_root()
        if root is None:
            return None
        base = root / "agentpty" / f"host-{os.getpid()}"
        try:
            base.mkdir(parents=True, exist_ok=True)
            probe = base / "probe"
            probe.mkdir(exist_ok=True)
            usable = (probe / "cgroup.kill").exists() and (probe / "cgroup.procs").exists()
            probe.rmdir()
        except OSError as exc:
            log.info("cgroup v2 at %s not usable (%s): containment by process tree", root, exc)
            return None
        if not usable:
            log.info("cgroup v2 at %s has no cgroup.kill: containment by process tree", root)
            return None
        cls._remove_stale(base.parent)
        return cls(base)

    @staticmethod
    def _remove_stale(parent: Path) -> None:
        """Remove the empty cgroups left by hosts that died (their pid is gone)."""
        for entry in parent.glob("host-*"):
            pid = entry.name.removeprefix("host-")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for child in entry.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                with contextlib.suppress(OSError):
                    entry.rmdir()

    def session_dir(self, key: str) -> Path:
        path = self.base / f"s-{key}"
        path.mkdir(exist_ok=True)
        return path

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.base.rmdir()


def cgroup_members(path: Path) -> list[int]:
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children lists of all its threads, recursively)."""
    found: list[int] = []
    stack = [pid]
    seen = {pid}
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    children = handle.read().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in seen:
                    seen.add(child)
                    found.append(child)
                    stack.append(child)
    return found


def members(keeper: int, cgroup: Path | None) -> list[int]:
    """The session's processes: its cgroup's, else the keeper's descendants."""
    return cgroup_members(cgroup) if cgroup is not None else descendants(keeper)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def signal_all(keeper: int, cgroup: Path | None, sig: int) -> int:
    """Send ``sig`` to every live process of the session; return how many were signalled."""
    count = 0
    for pid in members(keeper, cgroup):
        if _zombie(pid):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            count += 1
    return count


def kill_all(keeper: int, cgroup: Path | None) -> None:
    """SIGKILL every process of the session, including ones forked meanwhile.

    With a cgroup the kernel does it atomically (``cgroup.kill``); the tree
    walk (always done, as the final sweep) repeats until a pass finds nobody
    (SIGKILL cannot be ignored; a child forked between two passes is found by
    the next).
    """
    if cgroup is not None:
        try:
            (cgroup / "cgroup.kill").write_text("1")
        except OSError as exc:
            log.warning("cgroup.kill in %s failed (%s): walking the tree", cgroup, exc)
    # Also after cgroup.kill: a process could have been moved out of the cgroup.
    for _ in range(1000):
        if not signal_all(keeper, None, signal.SIGKILL):
            return
