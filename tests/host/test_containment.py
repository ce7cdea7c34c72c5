"""Nothing an agent starts escapes a stop: nohup jobs, setsid and double-forked daemons.

Also when the stop is the session host's death, and an agent that cannot be
started says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.base import agent_env
from agentpty.agents.shell import ShellProfile
from agentpty.config import Settings
from agentpty.host.client import host_pid
from tests.helpers import RunningServer, eventually, make_settings, serve, timeout
from tests.host.hostutil import alive_with_arg

MODES = ["cgroup", "process-tree"]


def escapees(tag: int) -> tuple[str, list[str]]:
    """Shell lines starting four ways to outlive a terminal, and their unique sleep arguments."""
    args = [f"{tag}{n}" for n in range(4)]
    line = (
        f"nohup sleep {args[0]} >/dev/null 2>&1 & "
        f"setsid sleep {args[1]} >/dev/null 2>&1 & "
        f"(setsid sh -c 'sleep {args[2]} >/dev/null 2>&1 &' &) ; "
        f"sh -c 'trap \"\" HUP TERM; sleep {args[3]}' >/dev/null 2>&1 & "
        "echo started-all\r"
    )
    return line, args


async def start_escapees(server: RunningServer, project: str) -> list[str]:
    line, args = escapees(random.randrange(10**6, 10**7))
    async with server.terminal(project) as term:
        await term.recv_type("status")
        await term.type(line)
        await term.read_until("started-all\r\n")

    async def all_alive() -> bool:
        return all(alive_with_arg(arg) for arg in args)

    await eventually(all_alive)
    return args


def survivors(args: list[str]) -> dict[str, list[int]]:
    return {arg: pids for arg in args if (pids := alive_with_arg(arg))}


async def check_containment(server: RunningServer, project: str, mode: str) -> None:
    async with server.http() as http:
        info = (await http.get(f"/api/output-projects/{project}/session")).json()
    assert info["containment"] == mode, info


@dataclass
class Escaped:
    settings: Settings
    server: RunningServer
    project: str
    #: The escapees' unique sleep arguments (``survivors`` finds them).
    args: list[str]


@contextlib.asynccontextmanager
async def escapees_started(data_dir: Path, mode: str, **overrides: Any) -> AsyncIterator[Escaped]:
    """A server whose shell project has started every kind of escapee, contained by ``mode``."""
    settings = make_settings(data_dir, session_cgroups=mode == "cgroup", **overrides)
    async with serve(settings) as server:
        project = await server.create_project()
        args = await start_escapees(server, project)
        await check_containment(server, project, mode)
        yield Escaped(settings, server, project, args)


async def none_survive(args: list[str]) -> None:
    """Wait until no escapee is alive (a stop's SIGKILL comes after its grace period)."""

    async def none_left() -> bool:
        return not survivors(args)

    await eventually(none_left, wait=10)


@pytest.mark.parametrize("mode", MODES)
async def test_delete_session_leaves_no_process(data_dir: Path, mode: str) -> None:
    """DELETE …/session: every daemon the shell started is gone when it returns."""
    async with escapees_started(data_dir, mode) as escaped:
        async with escaped.server.http() as http:
            response = await http.delete(f"/api/output-projects/{escaped.project}/session")
            assert response.status_code == 200, response.text
        assert not survivors(escaped.args)


@pytest.mark.parametrize("mode", MODES)
async def test_idle_stop_leaves_no_process(data_dir: Path, mode: str) -> None:
    """The host's idle stop (no client, no output) ends every daemon the shell started."""
    async with escapees_started(data_dir, mode, idle_timeout=2) as escaped:
        server, project = escaped.server, escaped.project

        async def exited() -> bool:
            async with server.http() as http:
                info = (await http.get(f"/api/output-projects/{project}/session")).json()
            return bool(info["state"] == "exited")

        await eventually(exited)

        # The session is exited when its agent is; what the agent left is then
        # stopped (SIGKILL after the grace period).
        await none_survive(escaped.args)
        async with server.http() as http:
            events = (await http.get(f"/api/output-projects/{project}/events")).json()["events"]
        assert [e["detail"]["reason"] for e in events if e["kind"] == "exited"] == ["idle"]


@pytest.mark.parametrize("mode", MODES)
async def test_stop_all_command_leaves_no_process(data_dir: Path, mode: str) -> None:
    """``agentpty stop --all`` stops every session and all their daemons."""
    async with escapees_started(data_dir, mode) as escaped:
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentpty",
            "stop",
            "--all",
            "--data-dir",
            str(data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(command.communicate(), timeout(30))
        assert command.returncode == 0, err.decode()
        assert out.decode().strip() == "stopped 1 session(s)"
        assert not survivors(escaped.args)


async def test_stop_all_without_host_says_so(data_dir: Path) -> None:
    """``agentpty stop --all`` with no host running: a clear line, exit 0."""
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "stop",
        "--all",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(command.communicate(), timeout(30))
    assert command.returncode == 0
    assert out.decode().strip() == f"no session host runs for {data_dir}: no session to stop"


@pytest.mark.parametrize("mode", MODES)
async def test_host_killed_leaves_no_process(data_dir: Path, mode: str) -> None:
    """kill -9 of the session host: each keeper takes its whole tree (and cgroup) down."""
    async with escapees_started(data_dir, mode) as escaped:
        host = host_pid(escaped.settings.run_dir)
        assert host is not None
        os.kill(host, signal.SIGKILL)
        await none_survive(escaped.args)


def not_a_program(folder: Path) -> Path:
    """An executable file the kernel refuses to run (neither ELF nor a script)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "not-a-program"
    path.write_bytes(b"\x00\x01 garbage")
    path.chmod(0o755)
    return path


async def test_agent_that_cannot_start_says_why(data_dir: Path) -> None:
    """An executable the kernel refuses: the start answers 502 with the reason, nothing runs."""
    garbage = not_a_program(data_dir)
    settings = make_settings(data_dir)
    shell = ShellProfile(agent_env(os.environ), shell=str(garbage), args=())
    async with serve(settings, {"shell": shell}) as server:
        project = await server.create_project()
        async with server.http() as http:
            response = await http.post(f"/api/output-projects/{project}/session")
        assert response.status_code == 502, response.text
        assert response.json()["detail"] == f"cannot start {str(garbage)!r}: Exec format error"
