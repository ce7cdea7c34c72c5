"""A server killed with kill -9 leaves its agents running; the next server adopts them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from agentpty.host.client import host_pid
from tests.helpers import eventually, timeout
from tests.host.hostutil import running, server_env, server_process, session_info, ticks

COUNTER = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done\r'


async def test_kill9_server_then_restart_adopts_the_counting_shell(data_dir: Path) -> None:
    """Same pid after kill -9 and restart; the counter goes on; ticks printed meanwhile show."""
    async with server_process(data_dir) as first:
        async with first.http() as http:
            response = await http.post("/api/output-projects", json={"name": "counter"})
            project = response.json()["id"]
        async with first.terminal(project) as term:
            pid = (await term.recv_type("status"))["pid"]
            await term.type(COUNTER)
            await term.read_until("tick 5\r\n")
            before = max(ticks(term.output))
        await first.kill()
    async with server_process(data_dir) as second:
        info = await session_info(second, project)
        assert info["state"] == "running" and info["pid"] == pid, info
        async with second.terminal(project) as term:
            status = await term.recv_type("status")
            assert status["pid"] == pid and status["resumed"] is False, status
            await term.read_until("tick")  # the snapshot
            target = max(ticks(term.output)) + 3
            await term.read_until(f"tick {target}\r\n")
            seen = set(ticks(term.screen_text()))
        # Every tick from before the kill to live output again: none lost while no server ran.
        assert set(range(before, target + 1)) <= seen, sorted(seen)
        assert target - before > 3  # some ticks were printed while no server ran


async def test_exit_while_no_server_is_reported_to_the_next_server(data_dir: Path) -> None:
    """An agent that exits while no server runs: the next server records its exit code."""
    async with server_process(data_dir) as first:
        async with first.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "x"})).json()["id"]
        async with first.terminal(project) as term:
            await term.recv_type("status")
            await term.type("sleep 1; exit 7\r")
            await term.read_until("sleep 1")
        await first.kill()
    async with server_process(data_dir) as second, second.http() as http:

        async def exited() -> list[dict[str, object]]:
            events = (await http.get(f"/api/output-projects/{project}/events")).json()["events"]
            return [e for e in events if e["kind"] == "exited"]

        (event,) = await eventually(exited)
        assert event["detail"]["exit_code"] == 7, event  # type: ignore[index]


async def test_host_killed_is_noticed_and_next_attach_starts_again(data_dir: Path) -> None:
    """kill -9 of the host: the server shows the session exited; the next attach starts anew."""
    async with server_process(data_dir) as server:
        async with server.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "h"})).json()["id"]
        async with server.terminal(project) as term:
            pid = (await term.recv_type("status"))["pid"]
            await term.type("echo ready\r")
            await term.read_until("ready")
            host = host_pid(data_dir / "run")
            assert host is not None
            os.kill(host, signal.SIGKILL)
            closed = await term.recv_type("closed")
            assert closed["exit_code"] == 128 + signal.SIGKILL, closed
        info = await session_info(server, project)
        assert info["state"] == "exited", info
        # The keeper took its tree down with the host.
        await eventually(lambda: _gone(pid))
        async with server.terminal(project) as term:
            status = await term.recv_type("status")
            assert status["pid"] != pid
            await term.type("echo again\r")
            await term.read_until("again")


async def _gone(pid: int) -> bool:
    return not running(pid)


async def test_second_server_on_one_data_dir_refuses_clearly(data_dir: Path) -> None:
    """Two servers on one data dir: the second says so in one line and exits 1."""
    async with server_process(data_dir):
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentpty",
            "serve",
            env={**server_env(data_dir), "AGENTPTY_PORT": "0"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(second.communicate(), timeout(30))
        assert second.returncode == 1
        lines = err.decode().strip().splitlines()
        assert lines == [
            f"agentpty: another agentpty server is using the data dir {data_dir}; "
            "stop it first, or give this one another --data-dir"
        ], lines


async def test_shutdown_detaches_and_the_next_server_adopts(data_dir: Path) -> None:
    """SIGTERM (default settings) leaves the agent running; the next server shows it again."""
    async with server_process(data_dir) as first:
        async with first.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "d"})).json()["id"]
        async with first.terminal(project) as term:
            pid = (await term.recv_type("status"))["pid"]
            await term.type("echo before-restart\r")
            await term.read_until("before-restart")
        assert await first.terminate() in (0, -signal.SIGTERM)
    assert running(pid)
    async with server_process(data_dir) as second, second.terminal(project) as term:
        assert (await term.recv_type("status"))["pid"] == pid
        await term.read_until("before-restart")
