"""Helpers of the session host tests: server processes on one data dir, agent processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.helpers import TOKEN, TermClient, start_server_process, timeout

__all__ = ["ServerProcess", "alive_with_arg", "running", "server_process", "ticks"]


class ServerProcess:
    """A real ``agentpty serve`` process and its base URL."""

    def __init__(self, process: asyncio.subprocess.Process, base: str) -> None:
        self.process = process
        self.base = base

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout(30)
        )

    @contextlib.asynccontextmanager
    async def terminal(self, project_id: str) -> AsyncIterator[TermClient]:
        url = self.base.replace("http", "ws") + f"/api/output-projects/{project_id}/terminal"
        async with websockets.connect(f"{url}?token={TOKEN}") as ws:
            yield TermClient(ws)

    async def kill(self) -> None:
        """kill -9, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    async def terminate(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            return await self.process.wait()


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AGENTPTY_DATA_DIR": str(data_dir),
        "AGENTPTY_DEFAULT_AGENT": "shell",
        "AGENTPTY_STOP_GRACE": "1",
        "SHELL": "/bin/sh",  # not this machine's bash and its rc files
        **extra,
    }


@contextlib.asynccontextmanager
async def server_process(data_dir: Path, **extra: str) -> AsyncIterator[ServerProcess]:
    """``agentpty serve`` on ``data_dir``, killed at the end of the block."""
    process, base = await start_server_process(server_env(data_dir, **extra))
    server = ServerProcess(process, base)
    try:
        yield server
    finally:
        await server.kill()


def alive_with_arg(arg: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line has the argument ``arg``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if arg.encode() in argv and stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def ticks(text: str) -> list[int]:
    return [int(number) for number in re.findall(r"tick (\d+)", text)]


async def session_info(server: Any, project: str) -> dict[str, Any]:
    async with server.http() as http:
        response = await http.get(f"/api/output-projects/{project}/session")
        assert response.status_code == 200, response.text
        info: dict[str, Any] = response.json()
        return info
