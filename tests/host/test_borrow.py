"""The server borrows a session's terminal from the host: it reads and writes the PTY itself."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.helpers import eventually, make_settings, serve
from tests.host.hostutil import server_process, session_info, ticks

COUNTER = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done\r'


def ptmx_fds(pid: int) -> list[str]:
    """The fds of ``pid`` open on a PTY master."""
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target in ("/dev/ptmx", "/dev/pts/ptmx"):
            found.append(name)
    return found


async def test_the_server_holds_the_terminal_it_follows(data_dir: Path) -> None:
    """The server process has the PTY master open and keystrokes reach the agent."""
    async with server_process(data_dir) as server:
        async with server.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "b"})).json()["id"]
        assert not ptmx_fds(server.process.pid)
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.type("echo borrowed-$((6*7))\r")
            await term.read_until("borrowed-42")
            assert len(ptmx_fds(server.process.pid)) == 1
        async with server.http() as http:
            response = await http.delete(f"/api/output-projects/{project}/session")
            assert response.status_code == 200, response.text

        async def released() -> bool:
            return not ptmx_fds(server.process.pid)

        await eventually(released)


async def test_output_the_server_reads_keeps_the_session_from_idling(data_dir: Path) -> None:
    """The host applies the idle policy to output it did not read itself."""
    settings = make_settings(data_dir, idle_timeout=1.5)
    async with serve(settings) as server:
        project = await server.create_project()
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.type(COUNTER)
            await term.read_until("tick 2\r\n")
        # No client now, but the counter goes on: three idle timeouts later it still runs.
        await asyncio.sleep(4.5)
        info = await session_info(server, project)
        assert info["state"] == "running", info
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.read_until("tick")
            latest = max(ticks(term.output))
            await term.read_until(f"tick {latest + 1}\r\n")
        # Quiet now: the idle stop still comes.
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.send(type="signal", signal="SIGINT")

        async def idled() -> bool:
            info = await session_info(server, project)
            return bool(info["state"] == "exited")

        await eventually(idled, wait=15)


async def test_stopping_one_session_leaves_the_others_followed(data_dir: Path) -> None:
    """The exit of one borrowed session keeps the server's link to the host (and the rest)."""
    async with server_process(data_dir) as server:
        async with server.http() as http:
            first, second = [
                (await http.post("/api/output-projects", json={"name": name})).json()["id"]
                for name in ("one", "two")
            ]
            for project in (first, second):
                async with server.terminal(project) as term:
                    await term.recv_type("status")
                    await term.type("echo up\r")
                    await term.read_until("up\r\n")
            response = await http.delete(f"/api/output-projects/{first}/session")
            assert response.status_code == 200, response.text
        async with server.terminal(second) as term:
            status = await term.recv_type("status")
            assert status["state"] == "running", status
            await term.type("echo still-$((6*7))\r")
            await term.read_until("still-42")
        info = await session_info(server, second)
        assert info["state"] == "running", info
