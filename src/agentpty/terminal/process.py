"""What a terminal session needs from the process it shows, and the in-process implementation.

Two implementations: ``PtyProcess`` (the agent is the server's child; it ends
with the server) and ``HostedProcess`` (the agent lives in the session host
and outlives the server). ``TerminalSession`` works with either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from agentpty.terminal.pty import PtyProcess

__all__ = ["ProcessFactory", "TerminalProcess", "local_process"]


class TerminalProcess(Protocol):
    """One agent process on one PTY, as a ``TerminalSession`` drives it."""

    rows: int
    cols: int
    exit_code: int | None
    #: Why it exited, when the owner of the process decided it (e.g. "idle").
    exit_reason: str | None
    #: "cgroup", "process-tree" or "process-group": how its processes are found on stop.
    containment: str
    #: True when the process keeps running after the server detaches from it.
    survives_server: bool
    #: True when the idle policy runs where the process lives (not in the server).
    owns_idle: bool

    @property
    def pid(self) -> int | None: ...

    async def launch(self) -> None:
        """Start the process (raises ``SessionStartError``)."""
        ...

    async def adopt(self) -> None:
        """Attach to a process that is already running (its recent output is replayed)."""
        ...

    def write(self, data: bytes) -> None: ...

    def pause_reading(self) -> None:
        """Stop reading the agent's output for now (every client is behind)."""
        ...

    def resume_reading(self) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def send_signal(self, sig: int) -> None: ...

    def set_clients(self, count: int) -> None: ...

    async def wait(self) -> int: ...

    async def terminate(self, grace: float = 3.0) -> int: ...

    def detach(self) -> None:
        """Stop following the process without stopping it."""
        ...


class ProcessFactory(Protocol):
    def __call__(
        self,
        key: str,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        rows: int,
        cols: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        idle_timeout: float | None,
        grace: float,
        meta: Mapping[str, Any],
    ) -> TerminalProcess: ...


def local_process(
    key: str,
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    rows: int,
    cols: int,
    on_output: Callable[[bytes], None],
    on_exit: Callable[[int], None],
    idle_timeout: float | None,
    grace: float,
    meta: Mapping[str, Any],
) -> TerminalProcess:
    """The agent as a child of this server (it ends with the server)."""
    return PtyProcess(
        argv, cwd=cwd, env=env, rows=rows, cols=cols, on_output=on_output, on_exit=on_exit
    )
