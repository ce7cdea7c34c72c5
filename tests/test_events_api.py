"""``GET /api/events``: token, bad ids, per-project filter, session and milestone events, resync."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import create_milestone, make_settings, serve
from tests.sse import sse_client


async def test_events_need_the_token_and_a_numeric_last_event_id(tmp_path: Path) -> None:
    """No token: 401 like every /api route; a Last-Event-ID that is not ours: 400 saying so."""
    async with serve(make_settings(tmp_path / "data")) as server:
        async with server.http(auth=False) as http:
            assert (await http.get("/api/events")).status_code == 401
        async with server.http() as http:
            response = await http.get("/api/events", headers={"Last-Event-ID": "yesterday"})
            assert response.status_code == 400
            assert "Last-Event-ID" in response.json()["detail"]


async def test_stream_carries_sessions_milestones_and_states_of_one_project(
    tmp_path: Path,
) -> None:
    """A shell session's start, screen-driven states, a milestone and the exit, for ?project_id=."""
    settings = make_settings(tmp_path / "data", state_quiet_time=0.3)
    async with serve(settings) as server:
        project = await server.create_project("one")
        other = await server.create_project("two")
        async with sse_client(server, query=f"?project_id={project}") as sse:
            async with server.http() as http:
                await http.post(f"/api/output-projects/{project}/session")
                await http.post(f"/api/output-projects/{other}/session")
                await sse.wait_for(lambda e: e.get("agent_state") == "idle")
                milestone = await create_milestone(http, project, "first")
                await sse.wait_for(lambda e: e.get("milestone_id") == milestone)
                await http.delete(f"/api/output-projects/{project}/session")
            await sse.wait_for(lambda e: e.get("agent_state") == "exited")
            # The history event follows the state, after its store write.
            await sse.wait_for(lambda e: e.get("type") == "session_exited")
            assert {e["project_id"] for e in sse.events} == {project}
            assert sse.names.index("session_started") < sse.names.index("session_exited")
            created = next(e for e in sse.events if e.get("milestone_id") == milestone)
            assert (created["status"], created["title"]) == ("pending", "first")
            ids = [int(i) for i in sse.ids if i is not None]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
        async with sse_client(server, last_event_id="1") as old:
            await old.wait_for(lambda e: e.get("type") == "resync")
            assert old.names[0] == "resync"


async def test_project_list_shows_the_stored_state(tmp_path: Path) -> None:
    """GET /api/output-projects carries agent_state, state_since and question for each project."""
    async with serve(make_settings(tmp_path / "data")) as server:
        project = await server.create_project("fresh")
        async with server.http() as http:
            listed = (await http.get("/api/output-projects")).json()["output_projects"]
        assert listed[0]["id"] == project
        assert listed[0]["agent_state"] == "unknown"
        assert listed[0]["state_since"] is None and listed[0]["question"] is None
        async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
            assert (await anonymous.get("/api/output-projects")).status_code == 401
