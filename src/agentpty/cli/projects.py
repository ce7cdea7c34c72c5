"""``agentpty projects``: list, create and delete output projects."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentpty.cli.client import Api, resolve_target
from agentpty.cli.options import Command, DefaultList, JsonOpt, UrlOpt
from agentpty.cli.output import Column, print_json, print_table, short

__all__ = ["PROJECT_COLUMNS", "app", "session_cell"]

app = typer.Typer(
    cls=DefaultList,
    help="List (the default), create and delete projects.",
    no_args_is_help=False,
)


def session_cell(session: dict[str, Any] | None) -> str:
    """``running (pid 123, 2 clients)``, ``exited (3)`` or ``none``."""
    if not session:
        return "none"
    state = str(session.get("state") or "none")
    if state == "running":
        return f"running (pid {session.get('pid')}, {session.get('clients', 0)} clients)"
    if state == "exited":
        return f"exited ({session.get('exit_code')})"
    return state


def _milestones(counts: dict[str, int] | None) -> str:
    counts = counts or {}
    order = ("pending", "in_progress", "completed", "failed")
    parts = [f"{counts[s]} {s.replace('_', ' ')}" for s in order if counts.get(s)]
    return ", ".join(parts) or "-"


PROJECT_COLUMNS: list[Column] = [
    ("ID", lambda p: short(p["id"])),
    ("NAME", lambda p: p["name"]),
    ("AGENT", lambda p: p["agent"]),
    ("SESSION", lambda p: session_cell(p.get("session"))),
    # Filled by servers that track what the agent is doing (working, needs input, idle).
    ("AGENT STATE", lambda p: p.get("agent_state")),
    ("CONVERSATION", lambda p: short(p.get("agent_session_id"))),
    ("MILESTONES", lambda p: _milestones(p.get("milestones"))),
]


@app.command("list", cls=Command)
def list_projects(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List projects with their session and agent state."""
    with Api(resolve_target(url)) as api:
        projects = api.projects()
    if as_json:
        print_json(projects)
    else:
        print_table(projects, PROJECT_COLUMNS, "no projects yet: agentpty projects new NAME")


@app.command("new", cls=Command)
def new_project(
    name: Annotated[str, typer.Argument(metavar="NAME", help="a name for people")],
    agent: Annotated[
        str | None,
        typer.Option(
            metavar="AGENT", help="claude, codex, gemini or shell [default: the server's]"
        ),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="folder under the server's workspaces root [default: <root>/<name>-<id>]",
        ),
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project; its workspace folder is created on the server."""
    body: dict[str, Any] = {"name": name}
    if agent:
        body["agent"] = agent
    if workspace:
        body["workspace_path"] = workspace
    with Api(resolve_target(url)) as api:
        project = api.call("POST", "/api/output-projects", json=body)
    if as_json:
        print_json(project)
        return
    typer.echo(f"created project {project['name']} ({project['id']}), agent {project['agent']}")
    typer.echo(f"workspace: {project['workspace_path']}")
    typer.echo(f"next: agentpty attach {project['name']}")


@app.command("rm", cls=Command)
def remove_project(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="id, name or a prefix")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a project: its session stops, its workspace folder stays on disk."""
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        api.call("DELETE", f"/api/output-projects/{found['id']}")
    if as_json:
        print_json({"deleted": found["id"], "workspace_path": found["workspace_path"]})
    else:
        typer.echo(f"deleted project {found['name']} ({short(found['id'])}); ", nl=False)
        typer.echo(f"its files stay in {found['workspace_path']}")
