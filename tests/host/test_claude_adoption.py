"""The real Claude Code CLI keeps working through a server crash, and its tools stop with it."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from tests.claude_world import ClaudeWorld, claude_world, type_message
from tests.helpers import TOKEN, TermClient, eventually, start_server_process, stop_host, timeout
from tests.host.hostutil import ServerProcess, alive_with_arg, running

pytestmark = pytest.mark.claude
__all__ = ["claude_world"]
ALLOW_BASH = "--allowedTools=Bash"


@pytest.fixture
async def world(claude_world: ClaudeWorld) -> AsyncIterator[ClaudeWorld]:
    """The Claude world, with its data dir's session host stopped at the end."""
    try:
        yield claude_world
    finally:
        await stop_host(claude_world.data_dir / "run")


def sleep_seconds() -> str:
    """A sleep long enough to span a server restart, unique to find its process."""
    return f"{int(timeout(8))}.{random.randrange(10**5, 10**6)}"


async def start_server(world: ClaudeWorld) -> ServerProcess:
    env = {
        **world.env,
        "AGENTPTY_DATA_DIR": str(world.data_dir),
        "AGENTPTY_TOKEN": TOKEN,
        "AGENTPTY_CLAUDE_BIN": world.settings_overrides()["claude_bin"],
        "AGENTPTY_CLAUDE_ARGS": ALLOW_BASH,
    }
    process, base = await start_server_process(env)
    return ServerProcess(process, base)


async def tool_sleep_running(term: TermClient, seconds: str) -> list[int]:
    """Wait for the Bash tool's sleep; on failure say what the screen showed."""

    async def found() -> list[int]:
        with contextlib.suppress(TimeoutError):
            await term.recv(0.05)  # keep the screen current
        return alive_with_arg(seconds)

    try:
        return await eventually(found, wait=20)
    except TimeoutError:
        screen = "\n".join(term.screen_text().splitlines()[-30:])
        raise AssertionError(f"no 'sleep {seconds}' started; the screen:\n{screen}") from None


async def test_server_kill9_during_bash_tool_then_adopted(world: ClaudeWorld) -> None:
    """kill -9 mid Bash-tool sleep; restart: same pid, same conversation, the turn finishes."""
    seconds = sleep_seconds()
    first = await start_server(world)
    try:
        async with first.http() as http:
            created = await http.post(
                "/api/output-projects", json={"name": "p", "agent": "claude", "workspace_path": "p"}
            )
            project = created.json()
        world.trust(project["workspace_path"])
        async with first.terminal(project["id"]) as term:
            before = await term.recv_type("status")
            await type_message(term, f"please [[bash: sleep {seconds} && echo slept-{seconds}]]")
            (sleeper,) = await tool_sleep_running(term, seconds)
    finally:
        await first.kill()
    assert running(before["pid"]) and running(sleeper)
    second = await start_server(world)
    try:
        async with second.terminal(project["id"]) as term:
            status = await term.recv_type("status")
            assert status["pid"] == before["pid"], (before, status)
            assert status["resumed"] is False
            assert status["agent_session_id"] == before["agent_session_id"]
            # The tool finishes, its result goes to the model, the turn ends.
            await term.read_screen_until("turn=1", wait=60)
        assert not running(sleeper)
        requests = world.api.requests
        assert len(requests) == 2, [r.get("messages", [])[-1] for r in requests]
        assert world.api.last_session_id() == before["agent_session_id"]
        assert world.api.last_turn() == 1  # no new conversation, no new user turn
        assert "[resumed conversation" not in term.output
    finally:
        await second.kill()


async def test_delete_session_kills_the_bash_tool_command(world: ClaudeWorld) -> None:
    """The Bash tool's command runs in its own session; DELETE …/session still ends it."""
    seconds = sleep_seconds()
    async with world.server(claude_args=ALLOW_BASH) as server:
        project = await world.create_project(server)
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await type_message(term, f"please [[bash: sleep {seconds} && echo slept-{seconds}]]")
            (sleeper,) = await tool_sleep_running(term, seconds)
        async with server.http() as http:
            response = await http.delete(f"/api/output-projects/{project}/session")
            assert response.status_code == 200, response.text
        assert not alive_with_arg(seconds), sleeper
        assert not running(sleeper)
