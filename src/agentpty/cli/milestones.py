"""``agentpty milestones``: list, create, start, complete and fail milestones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agentpty.cli.client import Api, CliError, resolve_target
from agentpty.cli.options import Command, DefaultList, JsonOpt, UrlOpt
from agentpty.cli.output import Column, age, print_json, print_table, short

__all__ = ["MILESTONE_COLUMNS", "app"]

app = typer.Typer(cls=DefaultList, help="List a project's milestones (the default), create, move.")

MilestoneArg = Annotated[str, typer.Argument(metavar="ID", help="milestone id or a unique prefix")]
ProjectArg = Annotated[str, typer.Argument(metavar="PROJECT", help="id, name or a unique prefix")]

MILESTONE_COLUMNS: list[Column] = [
    ("ID", lambda m: short(m["id"])),
    ("STATUS", lambda m: m["status"]),
    ("TITLE", lambda m: m["title"]),
    ("UPDATED", lambda m: age(m.get("updated_at"))),
    ("REASON", lambda m: m.get("status_reason")),
]


@app.command("list", cls=Command)
def list_milestones(project: ProjectArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List a project's milestones, oldest first."""
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        milestones = api.milestones(found["id"])
    if as_json:
        print_json(milestones)
    else:
        hint = f"no milestones yet: agentpty milestones new {found['name']} TITLE --context FILE"
        print_table(milestones, MILESTONE_COLUMNS, hint)


def _read_context(source: str | None) -> str:
    if source is None:
        return ""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the context file {source!r}: {exc}") from exc


@app.command("new", cls=Command)
def new_milestone(
    project: ProjectArg,
    title: Annotated[str, typer.Argument(metavar="TITLE", help="what this unit of work is")],
    context: Annotated[
        str | None,
        typer.Option(metavar="FILE|-", help="markdown brief for the agent; - reads stdin"),
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a pending milestone in PROJECT."""
    text = _read_context(context)
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        milestone = api.call(
            "POST",
            "/api/milestones",
            json={"output_project_id": found["id"], "title": title, "context": text},
        )
    if as_json:
        print_json(milestone)
    else:
        typer.echo(f"created milestone {short(milestone['id'])} in {found['name']}: {title}")
        typer.echo(f"next: agentpty milestones start {short(milestone['id'])}")


def _move(milestone: str, action: str, url: str | None, as_json: bool) -> dict[str, Any]:
    with Api(resolve_target(url)) as api:
        found = api.milestone(milestone)
        result: dict[str, Any] = api.call("POST", f"/api/milestones/{found['id']}/{action}")
    if as_json:
        print_json(result)
    else:
        typer.echo(f"milestone {short(result['id'])} ({result['title']}): {result['status']}")
    return result


@app.command("start", cls=Command)
def start_milestone(milestone: MilestoneArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Type the milestone's command into its project's conversation."""
    result = _move(milestone, "start", url, as_json)
    delivery = result.get("delivery") or {}
    if delivery.get("outcome") != "delivered":
        reason = delivery.get("reason") or result.get("status_reason") or "no reason given"
        raise CliError(f"not delivered ({delivery.get('outcome')}): {reason}")


@app.command("complete", cls=Command)
def complete_milestone(
    milestone: MilestoneArg, url: UrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Mark an in-progress milestone completed."""
    _move(milestone, "complete", url, as_json)


@app.command("fail", cls=Command)
def fail_milestone(milestone: MilestoneArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a milestone failed."""
    _move(milestone, "fail", url, as_json)
