"""Test helpers: a real agentpty server on a loopback port, and terminal clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyte
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from agentpty.agents.base import AgentProfile, agent_env
from agentpty.agents.shell import ShellProfile
from agentpty.api.app import create_app
from agentpty.config import Settings
from agentpty.host.client import kill_host, stop_all
from agentpty.service.container import Services, build_profiles

#: One knob scales every timeout in the suite (slow machines: 2, 3, ...).
SCALE = float(os.environ.get("AGENTPTY_TEST_TIMEOUT_SCALE", "1"))
T = TypeVar("T")
TOKEN = "test-token-0123456789"


def timeout(seconds: float) -> float:
    return seconds * SCALE


@dataclass
class RunningServer:
    """An agentpty app served by uvicorn on 127.0.0.1 in the test's event loop."""

    services: Services
    base_url: str
    token: str = TOKEN
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    def http(self, *, auth: bool = True, wait: float = 30) -> httpx.AsyncClient:
        """A client; ``wait``: seconds per request (scaled), more where work is long."""
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout(wait))

    async def create_project(self, name: str = "demo", agent: str = "shell", **extra: Any) -> str:
        async with self.http() as client:
            response = await client.post(
                "/api/output-projects", json={"name": name, "agent": agent, **extra}
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    @contextlib.asynccontextmanager
    async def terminal(
        self, project_id: str, *, path: str | None = None, **kwargs: Any
    ) -> AsyncIterator[TermClient]:
        url = f"{self.ws_url}{path or f'/api/output-projects/{project_id}/terminal'}"
        query = kwargs.pop("query", f"token={self.token}")
        async with websockets.connect(f"{url}?{query}", **kwargs) as ws:
            yield TermClient(ws)


#: Escape sequences, removed from output for plain-text failure messages.
ANSI_ESCAPE = re.compile(
    r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI
    r"|\][^\x07\x1b]*(\x07|\x1b\\)"  # OSC
    r"|[()][0-9A-Za-z]|[=>78])"  # charset, keypad, cursor save
)


class TermClient:
    """A WebSocket terminal client that keeps every frame it reads.

    ``rows``/``cols`` are the terminal size the server uses for a session no
    client has resized (24x80): ``screen_text`` renders the output at it.
    """

    def __init__(self, ws: ClientConnection, rows: int = 24, cols: int = 80) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._chunks: list[str] = []
        self._output = ""
        self._screen = pyte.HistoryScreen(cols, rows, history=5000)
        self._stream = pyte.Stream(self._screen)
        self._rendered = 0

    @property
    def output(self) -> str:
        """Every output frame's data so far, joined."""
        if self._chunks:
            self._output += "".join(self._chunks)
            self._chunks.clear()
        return self._output

    async def recv(self, wait: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout(wait)):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
        self.frames.append(frame)
        if frame["type"] == "output":
            self._chunks.append(frame["data"])
        return frame

    async def recv_type(self, kind: str, wait: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout(wait)):
            while True:
                frame = await self.recv(wait)
                if frame["type"] == kind:
                    return frame

    async def read_until(self, text: str, wait: float = 30) -> str:
        """Read frames until the accumulated output contains ``text``.

        On timeout the failure shows the end of the output, so a CI log says
        what the terminal showed instead.
        """
        start = 0
        try:
            async with asyncio.timeout(timeout(wait)):
                # Search only what is new (plus an overlap): output can be megabytes.
                while self.output.find(text, start) < 0:
                    start = max(0, len(self.output) - len(text))
                    await self.recv(wait)
        except TimeoutError:
            raise AssertionError(
                f"{text!r} not seen within {wait} s; the output ended with:\n{self.visible_tail()}"
            ) from None
        return self.output

    def screen_text(self) -> str:
        """The output as a terminal shows it: scrollback, then the screen (plain text).

        Built with pyte here, independently of the server's own screen model.
        """
        display = self.display()
        screen = self._screen
        history = [
            "".join(line[x].data for x in range(screen.columns)).rstrip()
            for line in screen.history.top
        ]
        return "\n".join([*history, *display])

    def display(self) -> list[str]:
        """The rendered screen (without scrollback), one right-trimmed string per row."""
        output = self.output
        self._stream.feed(output[self._rendered :])
        self._rendered = len(output)
        return [line.rstrip() for line in self._screen.display]

    async def read_screen_until(self, text: str, wait: float = 30) -> str:
        """Read frames until ``text`` shows on the rendered screen or its scrollback.

        For TUIs such as Claude Code, which redraw only the cells that
        changed: a word can be on screen without ever being sent whole.
        """
        try:
            async with asyncio.timeout(timeout(wait)):
                while text not in (rendered := self.screen_text()):
                    await self.recv(wait)
        except TimeoutError:
            raise AssertionError(
                f"{text!r} not on screen within {wait} s; the screen showed:\n"
                + "\n".join(self.screen_text().splitlines()[-30:])
            ) from None
        return rendered

    def visible_tail(self, chars: int = 1500) -> str:
        """The end of the output with escape sequences removed (for failure messages)."""
        plain = ANSI_ESCAPE.sub(" ", self.output[-chars * 4 :])
        return re.sub(r"[ \t]+", " ", plain)[-chars:]

    async def settle(self, quiet: float = 0.5, wait: float = 30) -> None:
        """Read until no frame arrives for ``quiet`` seconds (a human's pause before typing)."""
        async with asyncio.timeout(timeout(wait)):
            while True:
                try:
                    await self.recv(quiet)
                except TimeoutError:
                    return

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def type(self, data: str) -> None:
        await self.send(type="input", data=data)


async def eventually(check: Callable[[], Awaitable[T | None]], wait: float = 30) -> T:
    """Re-run ``check`` until it returns a value (tests only: the product waits on events)."""
    async with asyncio.timeout(timeout(wait)):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)


async def create_milestone(
    http: httpx.AsyncClient, project: str, title: str, context: str = "ctx"
) -> str:
    """POST a milestone (asserting 201) and return its id."""
    response = await http.post(
        "/api/milestones", json={"output_project_id": project, "title": title, "context": context}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def foreground_job(shell_pid: int) -> str | None:
    """The command name of the job in the foreground of ``shell_pid``'s terminal, if any.

    None while the shell itself is in the foreground.
    """
    after_name = Path(f"/proc/{shell_pid}/stat").read_text().rsplit(")", 1)[1]
    group = int(after_name.split()[5])  # tpgid: the terminal's foreground group
    if group == shell_pid:
        return None
    try:
        return Path(f"/proc/{group}/comm").read_text().strip()
    except FileNotFoundError:
        return None


async def wait_foreground(shell_pid: int, command: str) -> None:
    """Wait until ``command`` runs as the terminal's foreground job.

    A signal sent before that reaches the shell, or a child not yet exec'd.
    """

    async def running() -> bool:
        return foreground_job(shell_pid) == command

    await eventually(running, wait=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def empty_home(parent: Path) -> str:
    """A new, empty ``$HOME`` under ``parent`` for an agent under test.

    Agents' tools run login shells (Claude Code's Bash tool sources ``~/.bashrc``),
    so this machine's rc files would otherwise run inside every test: a stale
    pyenv rehash lock in ``~/.bashrc`` once stalled every Bash-tool command.
    """
    home = parent / "home"
    home.mkdir(exist_ok=True)
    return str(home)


def clean_shell(environ: Mapping[str, str] | None = None) -> ShellProfile:
    """bash without rc files: the suite must not depend on this machine's ~/.bashrc."""
    env = agent_env(os.environ if environ is None else environ)
    env["PS1"] = "$ "
    return ShellProfile(env, shell="/bin/bash", args=("--norc", "--noprofile", "-i"))


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "token": TOKEN,
        "host": "127.0.0.1",
        "port": 0,
        "default_agent": "shell",
        "stop_grace": 1.0,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, profiles: dict[str, AgentProfile] | None = None
) -> AsyncIterator[RunningServer]:
    """Serve agentpty on a loopback socket in this event loop until the block ends."""
    if profiles is None:
        profiles = build_profiles(settings)
        profiles["shell"] = clean_shell()
    services = Services.build(settings, profiles)
    app = create_app(services, TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    services.set_server_url(base_url, TOKEN)
    # A test's client often waits longer than uvicorn's 5 s keep-alive between
    # two requests: the server then closes the idle connection just as the
    # client reuses it, and the request fails with a ReadError (not a bug of
    # either; real clients retry or reconnect). Tests keep their connections.
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=1024 * 1024,
        lifespan="on",
        timeout_keep_alive=120,
    )
    server = uvicorn.Server(config)
    # serve() in the main thread takes SIGINT/SIGTERM for itself (capture_signals);
    # Ctrl-C must stop pytest, not quietly shut this test's server down.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield RunningServer(services=services, base_url=base_url)
    finally:
        services.bus.close()  # open event streams would hold uvicorn's shutdown (h12)
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
            await stop_host(settings.run_dir)


async def stop_host(run_dir: Path) -> None:
    """Stop every session of the data dir's session host, then kill the host (test cleanup).

    A host is detached from every server on purpose: left alone it would keep
    running after the suite.
    """
    try:
        async with asyncio.timeout(timeout(30)):
            await stop_all(run_dir, reason="test cleanup")
    finally:
        kill_host(run_dir)


async def start_server_process(
    env: dict[str, str], **options: Any
) -> tuple[asyncio.subprocess.Process, str]:
    """``agentpty serve`` as its own process; returns it and the base URL it printed.

    ``options`` go to ``create_subprocess_exec`` (e.g. ``preexec_fn``).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "serve",
        env={"AGENTPTY_PORT": "0", "AGENTPTY_TOKEN": TOKEN, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **options,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout(30)):
            line = (await process.stdout.readline()).decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert match, line
    except BaseException:
        # Never leave a server behind a failed start.
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    return process, match.group(1)
