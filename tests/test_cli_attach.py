"""``agentpty attach`` in a real PTY against a real server: the test is the terminal."""

from __future__ import annotations

import signal
import termios
from pathlib import Path

from agentpty.service.container import build_profiles
from tests.cli_pty import PtyCli, cli_env
from tests.helpers import RunningServer, eventually, make_settings, serve, start_server_process
from tests.test_milestones import FAKE_AGENT, FakeAgentWorld

DETACH = b"\x1cd"  # Ctrl-\ then d, the default detach key


def _is_raw(modes: list[object]) -> bool:
    lflag = modes[3]
    assert isinstance(lflag, int)
    return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)


async def test_output_appears_and_typing_reaches_the_agent(server: RunningServer) -> None:
    """The agent's screen is drawn in the local terminal and keys typed there reach it."""
    project = await server.create_project("typing")
    async with PtyCli.run(["attach", "typing"], cli_env(server.base_url)) as term:
        await term.read_screen_until("$")
        term.type(b"echo attached-$((40+2))\r")
        await term.read_screen_until("attached-42")
        assert server.services.sessions.info(project)["clients"] == 1
        term.type(DETACH)
        assert await term.wait() == 0


async def test_detach_key_leaves_the_agent_running_and_restores_the_terminal(
    server: RunningServer,
) -> None:
    """Ctrl-\\ d exits 0, the agent keeps running, the terminal is back in its old modes."""
    project = await server.create_project("detach")
    async with PtyCli.run(["attach", "det"], cli_env(server.base_url)) as term:
        before = term.modes()
        assert not _is_raw(before)
        await term.read_screen_until("$")
        assert _is_raw(term.modes())
        pid = server.services.sessions.info(project)["pid"]
        term.type(DETACH)
        assert await term.wait() == 0
        assert term.modes() == before
        info = server.services.sessions.info(project)
        assert info["state"] == "running" and info["pid"] == pid
        assert "detached from detach" in term.text()


async def test_prefix_twice_sends_it_through(server: RunningServer) -> None:
    """The detach prefix pressed twice reaches the agent once; other keys pass unchanged."""
    await server.create_project("prefix")
    async with PtyCli.run(["attach", "prefix"], cli_env(server.base_url)) as term:
        await term.read_screen_until("$")
        # -isig: the agent's terminal must not turn Ctrl-\ into SIGQUIT for cat.
        term.type(b"stty -isig; echo isig-$((1+1))-off; cat -v\r")
        await term.read_screen_until("isig-2-off")
        term.type(b"\x1c\x1cX-after\r")
        await term.read_screen_until("^\\X-after")
        term.type(DETACH)
        assert await term.wait() == 0


async def test_local_resize_reaches_the_session(server: RunningServer) -> None:
    """A window size change of the local terminal reaches `stty size` in the session."""
    project = await server.create_project("resize")
    async with PtyCli.run(["attach", "resize"], cli_env(server.base_url)) as term:
        await term.read_screen_until("$")
        assert server.services.sessions.info(project)["rows"] == 24
        term.resize(31, 101)

        async def resized() -> bool:
            info = server.services.sessions.info(project)
            return (info["rows"], info["cols"]) == (31, 101)

        await eventually(resized)
        term.type(b"stty size\r")
        await term.read_screen_until("31 101")
        term.type(DETACH)
        assert await term.wait() == 0


async def test_agent_exit_ends_attach_with_its_code(server: RunningServer) -> None:
    """When the agent exits, attach exits with the agent's exit code."""
    await server.create_project("exits")
    async with PtyCli.run(["attach", "exits"], cli_env(server.base_url)) as term:
        before_raw = term.modes()
        await term.read_screen_until("$")
        term.type(b"exit 3\r")
        assert await term.wait() == 3
        assert term.modes() == before_raw
        await term.read_screen_until("the agent exited with status 3")


async def test_sigterm_restores_the_terminal(server: RunningServer) -> None:
    """SIGTERM to attach restores the terminal and exits 128+15; the agent keeps running."""
    project = await server.create_project("termed")
    async with PtyCli.run(["attach", "termed"], cli_env(server.base_url)) as term:
        before = term.modes()
        await term.read_screen_until("$")
        assert _is_raw(term.modes())
        assert term.process is not None
        term.process.send_signal(signal.SIGTERM)
        assert await term.wait() == 128 + signal.SIGTERM
        assert term.modes() == before
        await term.read_screen_until("SIGTERM: left termed")
    assert server.services.sessions.info(project)["state"] == "running"


async def test_read_only_cannot_type(server: RunningServer) -> None:
    """With --read-only keys never reach the agent; the detach key still works."""
    project = await server.create_project("watch")
    env = cli_env(server.base_url)
    async with PtyCli.run(["attach", "--read-only", "watch"], env) as term:
        await term.read_screen_until("read-only")
        term.type(b"echo typed-$((7*6))-ro\r")
        term.type(DETACH)
        assert await term.wait() == 0
    # Had the keys been sent, the shell would have run them before this marker.
    async with server.terminal(project) as client:
        await client.type("echo marker-$((1+1))\r")
        await client.read_until("marker-2")
        assert "typed-42-ro" not in client.output
    assert server.services.sessions.info(project)["rows"] == 24


async def test_server_killed_restores_the_terminal(tmp_path: Path) -> None:
    """When the server dies, attach exits non-zero with one line and restores the terminal."""
    process, base_url = await start_server_process(
        {"AGENTPTY_DATA_DIR": str(tmp_path / "data"), "AGENTPTY_DEFAULT_AGENT": "shell"}
    )
    try:
        env = cli_env(base_url)
        async with PtyCli.run(["projects", "new", "doomed"], env) as setup:
            assert await setup.wait() == 0
        async with PtyCli.run(["attach", "doomed"], env) as term:
            before = term.modes()

            async def raw() -> bool:
                return _is_raw(term.modes())

            await eventually(raw)  # attached: the snapshot is on its way
            term.type(b"echo up-$((1+1))\r")
            await term.read_screen_until("up-2")
            process.kill()
            code = await term.wait()
            assert code != 0
            assert term.modes() == before
            await term.read_screen_until("agentpty: lost the connection to the server")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_wrong_token_is_one_line(server: RunningServer) -> None:
    """A wrong token ends attach with status 1 and one line, before any raw mode."""
    await server.create_project("locked")
    env = cli_env(server.base_url, AGENTPTY_TOKEN="wrong")
    async with PtyCli.run(["attach", "locked"], env) as term:
        before = term.modes()
        assert await term.wait() == 1
        assert term.modes() == before
        screen = await term.read_screen_until("refused the token")
        assert "Traceback" not in screen


async def test_resumed_and_expired_conversations_are_status_lines(tmp_path: Path) -> None:
    """A resumed and an expired conversation each show as one `[agentpty] …` line, not JSON."""
    world = FakeAgentWorld(tmp_path)  # the fake agent: a named stand-in for Claude Code
    settings = make_settings(tmp_path / "data", claude_bin=FAKE_AGENT, default_agent="claude")
    profiles = build_profiles(settings, environ=world.env)
    async with serve(settings, profiles) as server:
        project = await server.create_project("talk", agent="claude")
        env = cli_env(server.base_url)
        async with PtyCli.run(["attach", "talk"], env) as term:
            await term.read_screen_until("❯")
            term.type(b"hello\r")
            await term.read_screen_until("turn=1")
            term.type(b"/exit\r")
            assert await term.wait() == 0
        stored = (await server.services.projects.get(project)).agent_session_id
        assert stored
        async with PtyCli.run(["attach", "talk"], env) as term:
            screen = await term.read_screen_until(f"[agentpty] resumed conversation {stored[:8]}")
            assert '"type"' not in screen
            await term.read_screen_until("❯")
            term.type(b"/exit\r")
            assert await term.wait() == 0
        for transcript in world.config.glob(f"projects/*/{stored}.jsonl"):
            transcript.unlink()
        async with PtyCli.run(["attach", "talk"], env) as term:
            screen = await term.read_screen_until("could not be resumed")
            assert f"[agentpty] conversation {stored[:8]} could not be resumed" in screen
            assert '"type"' not in screen and "SESSION_EXPIRED" not in screen
            term.type(DETACH)
            assert await term.wait() == 0
