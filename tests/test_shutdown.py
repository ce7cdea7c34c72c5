"""The real server process: start-up line, and a shutdown that leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from agentpty.terminal.pty import session_members
from tests.helpers import TOKEN, TermClient, start_server_process, stop_host, timeout


async def start_server(data_dir: Path, **env: str) -> tuple[asyncio.subprocess.Process, str]:
    return await start_server_process(
        {
            **os.environ,
            "AGENTPTY_DATA_DIR": str(data_dir),
            "AGENTPTY_DEFAULT_AGENT": "shell",
            "SHELL": "/bin/sh",  # not this machine's bash and its rc files
            **env,
        }
    )


@pytest.mark.parametrize(
    "env",
    [{"AGENTPTY_STOP_ON_SHUTDOWN": "true"}, {"AGENTPTY_SESSION_HOST": "false"}],
    ids=["host-stop-on-shutdown", "in-process"],
)
async def test_sigterm_stops_every_agent_process(tmp_path: Path, env: dict[str, str]) -> None:
    """With the old behaviour, after SIGTERM the server exits and no agent process is left."""
    try:
        await _sigterm_stops_everything(tmp_path, env)
    finally:
        await stop_host(tmp_path / "run")


async def _sigterm_stops_everything(tmp_path: Path, env: dict[str, str]) -> None:
    process, base = await start_server(tmp_path, **env)
    sids = []
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            for name in ("one", "two"):
                project = (await http.post("/api/output-projects", json={"name": name})).json()
                url = (
                    base.replace("http", "ws")
                    + f"/api/output-projects/{project['id']}/terminal?token={TOKEN}"
                )
                async with websockets.connect(url) as ws:
                    term = TermClient(ws)
                    status = await term.recv()
                    sids.append(status["pid"])
                    # A background job (its own process group) and a stubborn foreground one.
                    await term.type("sleep 1001 & echo bg-started\r")
                    await term.read_until("bg-started")
                    await term.type("trap '' TERM HUP; sleep 1002\r")
        assert all(session_members(sid) for sid in sids)
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            code = await process.wait()
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM)
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    left = {sid: session_members(sid) for sid in sids}
    assert not any(left.values()), (left, errors)
    assert "Traceback" not in errors
    assert TOKEN not in errors  # no secret in the logs


async def test_unreachable_port_fails_cleanly(tmp_path: Path) -> None:
    """A port already in use: one clear line and a non-zero exit, no traceback."""
    first, base = await start_server(tmp_path / "a")
    try:
        port = base.rsplit(":", 1)[1]
        env = {**os.environ, "AGENTPTY_DATA_DIR": str(tmp_path / "b"), "AGENTPTY_PORT": port}
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentpty",
            "serve",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(second.communicate(), timeout(30))
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err.decode()
        assert "Traceback" not in err.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), timeout(30))
