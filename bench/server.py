"""The agentpty server under test, in a process of its own, and what /proc says about it.

The server runs as ``python -m agentpty serve --port 0`` so that its CPU time
(``utime + stime`` in ``/proc/<pid>/stat``) and resident memory (``VmRSS`` in
``/proc/<pid>/status``) are its own and never include the benchmark client.
Its port is learnt from the line it prints once it listens; no sleeping.

Shells get a private ``HOME`` whose ``.bashrc`` sets a fixed prompt
(``PROMPT``), so "the shell is ready" is an exact text to wait for, and the
user's own shell start-up files and history stay out of the measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["PROMPT", "ServerProcess", "Shutdown", "cpu_seconds", "cpu_seconds_fine", "rss_mib"]

#: The shells' prompt, set by the private .bashrc. It is followed by a space that a
#: screen snapshot trims (the shell may have prompted before the client attached).
PROMPT = "bench-ready$"
_BASHRC = f"PS1='{PROMPT} '\nunset PROMPT_COMMAND\nHISTFILE=\n"
_START_LINE = re.compile(r"agentpty serving on (http://\S+?)/\?token=(\S+)")
_TOKEN = "bench-token-0123456789abcdef"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        stat = handle.read()
    # Fields after "pid (comm)"; comm may contain spaces, so split after its ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # stat fields 14 and 15
    return (utime + stime) / _CLK_TCK


def cpu_seconds_fine(pid: int) -> float:
    """CPU time of process ``pid``'s live threads from ``schedstat`` (nanoseconds).

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms): too coarse for an idle
    window of a few ms of CPU. Threads that exit are not counted, so use it
    over windows in which none do.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` (VmRSS), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _start_time(pid: int) -> int | None:
    """Start time of a running (not zombie) process, or None: tells a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])  # stat fields 3 and 22


def _children(pid: int) -> dict[int, int]:
    """The running children of ``pid`` (its agents), by pid, with their start times."""
    found: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                start = _start_time(int(child))
                if start is not None:
                    found[int(child)] = start
    return found


@dataclass(frozen=True)
class Shutdown:
    """How the server ended after SIGTERM.

    ``exit_code`` is None if it had to be killed. uvicorn re-raises the signal
    after its graceful shutdown, so a clean exit reads as ``-SIGTERM``.
    ``survivors`` counts the children (agents) still running afterwards.
    """

    exit_code: int | None
    seconds: float
    children: int
    survivors: int

    @property
    def clean(self) -> bool:
        return self.exit_code in (0, -signal.SIGTERM) and self.survivors == 0


class ServerProcess:
    """One ``agentpty serve`` child process, with an HTTP client for its REST API."""

    def __init__(
        self, process: asyncio.subprocess.Process, base_url: str, token: str, log_path: Path
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.token = token
        self.log_path = log_path
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self._drain: asyncio.Task[None] | None = None
        self._shutdown: Shutdown | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def data_dir(self) -> Path:
        return self.log_path.parent / "data"

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    @property
    def host(self) -> str:
        return self.base_url.removeprefix("http://").rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @classmethod
    async def start(
        cls,
        workdir: Path,
        *,
        timeout: float = 60.0,
        extra_env: dict[str, str] | None = None,
        source: Path | None = None,
        restart: bool = False,
    ) -> ServerProcess:
        """Start a server with its data and its shells' HOME under ``workdir``.

        ``extra_env`` is added to its environment (``AGENTPTY_*`` settings);
        ``source`` is another ``src`` folder (absolute) to import agentpty from (to
        measure an earlier version with the same bench). With ``restart``, a
        server on the data dir of an earlier one (which adopts the sessions it
        left in the session host).

        Returns once the server printed its start line; raises ``RuntimeError``
        (with the end of its log) if it exits or stays silent for ``timeout`` s.
        """
        home = workdir / "home"
        if not restart:
            home.mkdir(parents=True)
            (home / ".bashrc").write_text(_BASHRC)
        log_path = workdir / ("server-restart.log" if restart else "server.log")
        env = {
            **os.environ,
            "HOME": str(home),
            "AGENTPTY_DATA_DIR": str(workdir / "data"),
            "AGENTPTY_TOKEN": _TOKEN,
            "AGENTPTY_DEFAULT_AGENT": "shell",
            # Stand-in binary: (e) creates Claude projects only to report hooks
            # for them; no Claude Code process is started in any measurement.
            "AGENTPTY_CLAUDE_BIN": "/bin/true",
            **(extra_env or {}),
        }
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(source), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        argv = [sys.executable, "-m", "agentpty", "serve", "--port", "0"]
        argv += ["--log-level", "warning"]
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await process.stdout.readline()
                    if not line:
                        await process.wait()
                        raise RuntimeError(
                            f"server exited with {process.returncode} before listening:\n"
                            + _tail(log_path)
                        )
                    match = _START_LINE.search(line.decode(errors="replace"))
                    if match:
                        break
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        server = cls(process, match.group(1), match.group(2), log_path)
        # Anything the server prints later must not fill the pipe and block it.
        server._drain = asyncio.get_running_loop().create_task(
            server._discard_stdout(), name="server stdout"
        )
        return server

    async def _discard_stdout(self) -> None:
        assert self.process.stdout is not None
        while await self.process.stdout.read(65536):
            pass

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    async def warm_up(self) -> None:
        """One authenticated request that touches the database (``RuntimeError`` if it fails)."""
        try:
            response = await self.http.get("/api/output-projects")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"warm-up request failed: {exc}") from exc

    async def create_project(self, name: str, agent: str = "shell") -> str:
        """Create an output project (running the shell agent by default); return its id."""
        response = await self.http.post("/api/output-projects", json={"name": name, "agent": agent})
        if response.status_code != 201:
            raise RuntimeError(f"creating project {name!r} failed: {response.text}")
        return str(response.json()["id"])

    async def delete_project(self, project_id: str) -> None:
        """Delete a project, which stops its session (its files stay)."""
        response = await self.http.delete(f"/api/output-projects/{project_id}")
        response.raise_for_status()

    async def stop(self, *, timeout: float = 15.0) -> Shutdown:
        """SIGTERM the server and wait up to ``timeout`` s; SIGKILL it if it does not exit.

        Idempotent: later calls return the first result.
        """
        if self._shutdown is not None:
            return self._shutdown
        await self.http.aclose()
        children = _children(self.pid) if self.process.returncode is None else {}
        started = time.perf_counter()
        exit_code: int | None = None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                exit_code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        seconds = time.perf_counter() - started
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        survivors = [pid for pid, start in children.items() if _start_time(pid) == start]
        self._shutdown = Shutdown(exit_code, seconds, len(children), len(survivors))
        return self._shutdown

    def log_tail(self) -> str:
        return _tail(self.log_path)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
