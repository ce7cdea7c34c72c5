"""Agent state and confirmed delivery with the real Claude Code CLI (fake Messages API).

The fake answers ``[[bash: touch x]]`` with a Bash tool call that Claude Code
asks permission for in its default mode (tests/fake_messages_api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.claude_permissions import asking_mode_args
from tests.claude_world import (
    ClaudeWorld,
    approve_in,
    claude_world,
    require_claude,
    type_message,
)
from tests.helpers import TermClient, create_milestone, eventually, timeout
from tests.sse import sse_client

pytestmark = pytest.mark.claude
__all__ = ["claude_world"]


def is_state(project: str, state: str, **detail: Any) -> Any:
    def match(event: dict[str, Any]) -> bool:
        if event.get("type") != "state" or event.get("project_id") != project:
            return False
        if event["agent_state"] != state:
            return False
        return all(event.get(key) == value for key, value in detail.items())

    return match


def collapse(states: list[str]) -> list[str]:
    """Consecutive repeats removed (a tool starting is a new ``working`` event)."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


@contextlib.asynccontextmanager
async def reading(term: TermClient) -> AsyncIterator[None]:
    """Keep reading ``term``'s frames in the background (a second, passive browser tab)."""

    async def pump() -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await term.recv(600)
                if frame["type"] == "closed":
                    return

    task = asyncio.ensure_future(pump())
    try:
        yield
    finally:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout(10))
        task.cancel()


def state_ids(term: TermClient) -> list[str]:
    return [str(f["id"]) for f in term.frames if f["type"] == "state" and "id" in f]


async def test_states_follow_prompt_permission_and_exit_everywhere(
    claude_world: ClaudeWorld,
) -> None:
    """prompt → working → idle; tool → needs_input (Bash named) → Enter → idle; exit → exited.

    A second tab and the SSE stream see the same events in order, and an SSE
    client reconnecting with Last-Event-ID gets exactly what it missed.
    """
    async with claude_world.server(claude_args=asking_mode_args(require_claude())) as server:
        project = await claude_world.create_project(server)
        async with sse_client(server) as sse:
            async with server.terminal(project) as tab, server.terminal(project) as other:
                await tab.recv_type("status")
                async with reading(other):
                    await type_message(tab, "hello")
                    first = await sse.wait_for(is_state(project, "working"))
                    done = await sse.wait_for(is_state(project, "idle"), first)
                    await type_message(tab, "please [[bash: touch x]]")
                    asked = await sse.wait_for(is_state(project, "needs_input"), done)
                    assert sse.events[asked]["question"] == {"tool": "Bash", "detail": "touch x"}
                    async with server.http() as http:
                        listed = (await http.get(f"/api/output-projects/{project}")).json()
                    assert listed["agent_state"] == "needs_input"
                    assert listed["question"]["tool"] == "Bash" and listed["state_since"]
                    assert not (Path(listed["workspace_path"]) / "x").exists()
                    await approve_in(tab)  # Enter on the menu approves the default choice
                    after = await sse.wait_for(is_state(project, "idle"), asked)
                    assert (Path(listed["workspace_path"]) / "x").exists()
                    await type_message(tab, "/exit")
                    await sse.wait_for(is_state(project, "exited"), after)
                    await tab.recv_type("closed", wait=30)
            states = sse.states(project)
            assert collapse(states) == [
                "starting",
                "idle",
                "working",
                "idle",
                "working",
                "needs_input",
                "working",
                "idle",
                "exited",
            ], states
            exited = [e for e in sse.events if e.get("agent_state") == "exited"]
            assert exited[-1]["state_detail"] == {"exit_code": 0}
            assert "session_started" in sse.names and "session_exited" in sse.names
            sse_ids = [i for i, e in zip(sse.ids, sse.events, strict=True) if e["type"] == "state"]
            for term in (tab, other):
                ids = state_ids(term)
                assert ids and ids == sse_ids[sse_ids.index(ids[0]) :], (ids, sse_ids)
            missed_from = sse.ids[asked]
            expected = [e for e in sse.events[asked + 1 :]]
        assert missed_from is not None
        async with sse_client(server, last_event_id=missed_from) as again:
            await again.wait_for(lambda e: e.get("id") == expected[-1]["id"])
            assert again.events == expected
            assert "resync" not in again.names


async def test_milestone_waits_for_the_permission_prompt_and_is_confirmed(
    claude_world: ClaudeWorld,
) -> None:
    """A milestone started during a permission prompt is typed only after it is answered."""
    async with claude_world.server(claude_args=asking_mode_args(require_claude())) as server:
        project = await claude_world.create_project(server)
        async with sse_client(server) as sse, server.terminal(project) as tab:
            await tab.recv_type("status")
            await type_message(tab, "hello")
            await sse.wait_for(
                is_state(project, "idle"), await sse.wait_for(is_state(project, "working"))
            )
            await type_message(tab, "please [[bash: touch x]]")
            asked = await sse.wait_for(is_state(project, "needs_input"))
            async with server.http() as http:
                milestone = await create_milestone(http, project, "second")
                start = asyncio.ensure_future(http.post(f"/api/milestones/{milestone}/start"))
                workspace = Path(
                    (await http.get(f"/api/output-projects/{project}")).json()["workspace_path"]
                )
                context = workspace / ".milestones" / milestone / "MILESTONE-CONTEXT.md"
                await eventually(lambda: asyncio.sleep(0, context.exists()))
                # The command is now queued behind the question: a bounded wait for the
                # wrong outcome (the start finishing while the question is still open).
                await asyncio.wait({start}, timeout=timeout(2))
                assert not start.done()
                assert not (workspace / "x").exists()
                assert len(claude_world.api.requests) == 2
                await approve_in(tab)
                reply = (await start).json()
            assert reply["status"] == "in_progress", reply
            assert reply["delivery"]["outcome"] == "delivered", reply
            command = f"/gsd:new-milestone .milestones/{milestone}/MILESTONE-CONTEXT.md"
            assert reply["delivery"]["agent_words"] == command
            assert (workspace / "x").exists()
            await claude_world.wait_requests(4)
            assert "GSD-NEW-MILESTONE" in claude_world.api.last_user_text()
            order = collapse(sse.states(project))
            assert order[order.index("needs_input") :][:4] == [
                "needs_input",
                "working",
                "idle",
                "working",
            ]
            assert sse.events[asked]["question"]["tool"] == "Bash"
