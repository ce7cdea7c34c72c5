"""Helpers for end-to-end tests of Codex and Gemini projects through a real server.

The server runs in the test's event loop (``tests.helpers.serve``) with the
agent's world environment (an isolated home and a fake model API). Project
workspaces lie under the world's root, so the world's trusted workspace
(``<root>/proj``) is the project's: the CLIs start without trust dialogs.
Milestone commands are plain text ("start {title}", "next {title}"): these
agents have no ``/gsd`` commands.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from agentpty.service.container import build_profiles
from tests.helpers import RunningServer, clean_shell, eventually, make_settings, serve

__all__ = [
    "agent_server",
    "cmdline",
    "create_project",
    "read_run",
    "screen",
    "send_text",
    "wait_screen",
]

WORKSPACE = "proj"


@contextlib.asynccontextmanager
async def agent_server(
    root: Path, env: dict[str, str], agent: str, binary: str, **overrides: Any
) -> AsyncIterator[RunningServer]:
    """A server whose ``agent`` runs ``binary`` with ``env``; data in ``<root>/data``."""
    settings = make_settings(
        root / "data",
        workspaces_root=root,
        default_agent=agent,
        new_project_command="start {title}",
        new_milestone_command="next {title}",
        **{f"{agent}_bin": binary, **overrides},
    )
    profiles = build_profiles(settings, environ=env)
    profiles["shell"] = clean_shell(env)
    async with serve(settings, profiles) as running:
        yield running


def cmdline(server: RunningServer, project: str) -> list[str]:
    """argv of the project's live agent process, read from /proc."""
    live = server.services.sessions.live(project)
    assert live is not None and live.terminal.pid is not None, "no live terminal session"
    return Path(f"/proc/{live.terminal.pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def screen(server: RunningServer, project: str) -> str:
    """The project's terminal screen and scrollback ('' without a terminal session)."""
    live = server.services.sessions.current(project)
    return "" if live is None else live.terminal.screen.text()


async def wait_screen(server: RunningServer, project: str, text: str, wait: float = 60) -> None:
    """Wait until ``text`` is on the project's screen; fail with the screen otherwise."""

    async def shown() -> bool:
        return text in screen(server, project)

    try:
        await eventually(shown, wait=wait)
    except TimeoutError:
        raise AssertionError(f"{text!r} not on screen:\n{screen(server, project)}") from None


async def send_text(http: httpx.AsyncClient, project: str, text: str) -> dict[str, Any]:
    """Type ``text`` and Enter through the input API; returns its answer."""
    response = await http.post(
        f"/api/output-projects/{project}/session/input", json={"text": text, "submit": True}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def read_run(
    http: httpx.AsyncClient, project: str, prompt: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start a headless run; return its SSE events (the agent's own JSON) and its record."""
    started = await http.post(f"/api/output-projects/{project}/runs", json={"prompt": prompt})
    assert started.status_code == 202, started.text
    run = started.json()
    events = []
    async with http.stream(
        "GET", f"/api/output-projects/{project}/runs/{run['id']}/events"
    ) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    record = (await http.get(f"/api/output-projects/{project}/runs/{run['id']}")).json()
    return events, record


async def create_project(server: RunningServer, agent: str) -> str:
    """A project of ``agent`` in the world's trusted workspace."""
    return await server.create_project("proj", agent=agent, workspace_path=WORKSPACE)
