"""REST: projects, sessions, input; auth and bad input get clear errors."""

from __future__ import annotations

import os
from pathlib import Path

from agentpty.agents.base import agent_env
from agentpty.service.container import build_profiles
from tests.helpers import RunningServer, clean_shell, make_settings, serve


async def test_healthz_needs_no_token(server: RunningServer) -> None:
    """/healthz answers without a token."""
    async with server.http(auth=False) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_every_api_request_needs_the_token(server: RunningServer) -> None:
    """Without the token the API answers 401 saying how to authenticate."""
    async with server.http(auth=False) as http:
        response = await http.get("/api/output-projects")
        assert response.status_code == 401
        assert "token" in response.json()["detail"]
        wrong = await http.get("/api/output-projects", headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        by_query = await http.get(f"/api/output-projects?token={server.token}")
        assert by_query.status_code == 200
        by_cookie = await http.get(
            "/api/output-projects", headers={"Cookie": f"agentpty_token={server.token}"}
        )
        assert by_cookie.status_code == 200


async def test_sign_in_moves_token_to_cookie(server: RunningServer) -> None:
    """/?token=… sets an HttpOnly cookie and redirects to a URL without the token."""
    async with server.http(auth=False) as http:
        response = await http.get(f"/?token={server.token}")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "agentpty_token=" in cookie and "HttpOnly" in cookie


async def test_project_lifecycle(server: RunningServer) -> None:
    """Create, get, list and delete a project; its workspace and .planning exist."""
    async with server.http() as http:
        created = await http.post(
            "/api/output-projects", json={"name": "My App!", "agent": "shell"}
        )
        assert created.status_code == 201
        project = created.json()
        workspace = Path(project["workspace_path"])
        assert workspace.is_absolute() and (workspace / ".planning").is_dir()
        assert workspace.parent == server.services.settings.workspaces
        assert workspace.name.startswith("my-app-")
        assert project["milestones"] == {
            "pending": 0,
            "in_progress": 0,
            "completed": 0,
            "failed": 0,
        }
        fetched = (await http.get(f"/api/output-projects/{project['id']}")).json()
        assert fetched["id"] == project["id"] and fetched["session"]["state"] == "none"
        listing = (await http.get("/api/output-projects")).json()
        assert listing["total"] == 1 and listing["output_projects"][0]["id"] == project["id"]
        (workspace / "keep.txt").write_text("user file")
        assert (await http.delete(f"/api/output-projects/{project['id']}")).status_code == 204
        assert (await http.get(f"/api/output-projects/{project['id']}")).status_code == 404
        assert (workspace / "keep.txt").read_text() == "user file"


async def test_workspace_path_confined_to_root(server: RunningServer) -> None:
    """A workspace_path outside the workspaces root is refused with 400."""
    async with server.http() as http:
        for path in ("/etc", "../../escape", str(server.services.settings.workspaces)):
            response = await http.post(
                "/api/output-projects", json={"name": "x", "agent": "shell", "workspace_path": path}
            )
            assert response.status_code == 400, path
            assert "workspaces root" in response.json()["detail"]
        inside = await http.post(
            "/api/output-projects", json={"name": "x", "agent": "shell", "workspace_path": "mine"}
        )
        assert inside.status_code == 201
        assert inside.json()["workspace_path"] == str(server.services.settings.workspaces / "mine")


async def test_bad_project_input(server: RunningServer) -> None:
    """Missing name, unknown agent and unknown ids get 4xx with a reason."""
    async with server.http() as http:
        assert (await http.post("/api/output-projects", json={})).status_code == 422
        unknown = await http.post("/api/output-projects", json={"name": "x", "agent": "nope"})
        assert unknown.status_code == 400 and "unknown agent" in unknown.json()["detail"]
        missing = await http.get("/api/output-projects/doesnotexist")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        assert (await http.get("/api/output-projects/doesnotexist/session")).status_code == 404


async def test_claude_project_without_binary_is_422(server: RunningServer, tmp_path: Path) -> None:
    """agent=claude while the binary is missing: 422 saying how to install it."""
    profile = server.services.sessions.profiles["claude"]
    profile.binary = str(tmp_path / "no-claude-here")  # type: ignore[attr-defined]
    async with server.http() as http:
        response = await http.post("/api/output-projects", json={"name": "x", "agent": "claude"})
    assert response.status_code == 422
    assert "npm install -g @anthropic-ai/claude-code" in response.json()["detail"]


async def test_session_rest_start_input_stop(server: RunningServer) -> None:
    """POST session starts, input is delivered and submitted, DELETE stops; states follow."""
    project = await server.create_project()
    async with server.http() as http, server.terminal(project) as term:
        base = f"/api/output-projects/{project}/session"
        await term.recv()
        info = (await http.get(base)).json()
        assert info["state"] == "running" and info["clients"] == 1
        again = (await http.post(base)).json()
        assert again["pid"] == info["pid"] and again["started"] is False
        sent = await http.post(f"{base}/input", json={"text": "echo typed-$((5*5))"})
        assert sent.json() == {"outcome": "delivered", "reason": "", "delivered": True}
        await term.read_until("typed-25")
        stopped = (await http.delete(base)).json()
        assert stopped["state"] == "exited" and stopped["stopped"] is True
        assert stopped["exit_code"] is not None
        assert (await term.recv_type("closed"))["exit_code"] == stopped["exit_code"]
        empty = await http.post(f"{base}/input", json={"text": "", "submit": False})
        assert empty.status_code == 400


async def test_pid_is_gone_after_stop(server: RunningServer) -> None:
    """DELETE session leaves no process behind."""
    project = await server.create_project()
    async with server.http() as http:
        pid = (await http.post(f"/api/output-projects/{project}/session")).json()["pid"]
        await http.delete(f"/api/output-projects/{project}/session")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"process {pid} still exists")


async def test_wrong_token_in_sign_in_url_sets_no_cookie(server: RunningServer) -> None:
    """/?token=<wrong> redirects to the page (its sign-in panel) without a cookie."""
    async with server.http(auth=False) as http:
        response = await http.get("/?token=wrong")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "set-cookie" not in response.headers


async def test_agents_do_not_inherit_secrets(tmp_path: Path) -> None:
    """AGENTPTY_* variables and AGENTPTY_AGENT_ENV_DROP names never reach the agent."""
    environ = {
        **os.environ,
        "AGENTPTY_TOKEN": "server-secret",
        "AGENTPTY_DATABASE_URL": "mongodb://u:pw@db/x",
        "ANTHROPIC_API_KEY": "sk-drop-me",
        "KEEP_ME": "kept",
    }
    settings = make_settings(tmp_path / "data", agent_env_drop="ANTHROPIC_API_KEY")
    profiles = build_profiles(settings, environ=environ)
    profiles["shell"] = clean_shell(agent_env(environ, settings.env_drop))
    async with serve(settings, profiles) as server:
        project = await server.create_project()
        async with server.terminal(project) as term:
            await term.recv()
            await term.type("env | sort | sed 's/^/ENV:/'; echo END-$((1+1))\r")
            await term.read_until("END-2")
    seen = {line.strip() for line in term.output.splitlines() if line.startswith("ENV:")}
    assert "ENV:KEEP_ME=kept" in seen
    assert not [line for line in seen if "ANTHROPIC_API_KEY" in line]
    names = {line[4:].split("=", 1)[0] for line in seen}
    assert names & {"AGENTPTY_TOKEN", "AGENTPTY_DATABASE_URL"} == set()
    assert "AGENTPTY_HOOK_URL" in names  # the one agentpty sets on purpose


async def test_headless_run_of_an_agent_without_one_is_400(server: RunningServer) -> None:
    """A shell project has no headless mode: 400 naming the agents that have one."""
    project = await server.create_project(agent="shell")
    async with server.http() as http:
        response = await http.post(f"/api/output-projects/{project}/runs", json={"prompt": "x"})
    assert response.status_code == 400
    assert "'shell' has no headless mode" in response.json()["detail"]
    assert "claude" in response.json()["detail"]
