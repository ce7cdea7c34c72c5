"""Commands on a project's terminal session: attach, start, stop, send, events."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agentpty.cli.attach import attach_session
from agentpty.cli.client import Api, CliError, resolve_target
from agentpty.cli.keys import DEFAULT_DETACH_KEYS, DetachKeys, InvalidKeys
from agentpty.cli.localterm import LocalTerminal
from agentpty.cli.options import JsonOpt, UrlOpt
from agentpty.cli.output import Column, age, print_json, print_table, short
from agentpty.cli.projects import session_cell

__all__ = ["attach", "events", "send", "start", "stop", "stop_project"]

ProjectArg = Annotated[str, typer.Argument(metavar="PROJECT", help="id, name or a unique prefix")]
#: ``events --follow`` asks again this often (the server has no event stream for a project).
FOLLOW_INTERVAL = 2.0


def attach(
    project: ProjectArg,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="watch only: send no keys and no window size")
    ] = False,
    detach_keys: Annotated[
        str | None,
        typer.Option(
            metavar="KEYS",
            help="prefix and key that detach, e.g. 'ctrl-a,d' [env AGENTPTY_DETACH_KEYS; "
            f"default {DEFAULT_DETACH_KEYS}]",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = None,
) -> None:
    """Attach this terminal to a project's agent; Ctrl-\\ then d detaches.

    The session starts or resumes if needed. Pressing the prefix twice sends it
    to the agent. Exit status: 0 on detach, the agent's exit code if it exits.
    """
    spelling = detach_keys or os.environ.get("AGENTPTY_DETACH_KEYS") or DEFAULT_DETACH_KEYS
    try:
        keys = DetachKeys.parse(spelling)
    except InvalidKeys as exc:
        raise CliError(f"detach keys {exc}") from exc
    target = resolve_target(url)
    with Api(target) as api:
        found = api.project(project)
    label = f"{found['name']} ({short(found['id'])})"
    term = LocalTerminal()
    ending = asyncio.run(
        attach_session(target, found["id"], keys=keys, read_only=read_only, term=term)
    )
    if ending.how == "detached":
        typer.echo(f"[detached from {label}; the agent keeps running]", err=True)
    elif ending.how == "exited":
        typer.echo(f"[{label}: the agent exited with status {ending.status}]", err=True)
    else:
        typer.echo(f"[{ending.how}: left {label}; the agent keeps running]", err=True)
    raise typer.Exit(ending.status)


def start(project: ProjectArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Start or resume a project's session (without attaching)."""
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        info = api.call("POST", f"/api/output-projects/{found['id']}/session")
    if as_json:
        print_json(info)
        return
    verb = "started" if info.get("started") else "already running"
    if info.get("started") and info.get("resumed"):
        verb = f"resumed conversation {short(info.get('agent_session_id'))}"
    typer.echo(f"{found['name']}: {verb}; {session_cell(info)}")


def stop_project(api: Api, project: str) -> dict[str, Any]:
    """Stop one project's session; the API's answer with the project's name added."""
    found = api.project(project)
    info = api.call("DELETE", f"/api/output-projects/{found['id']}/session")
    return {**info, "project": found["name"], "project_id": found["id"]}


def stop(
    project: Annotated[
        str | None, typer.Argument(metavar="PROJECT", help="id, name or a unique prefix")
    ] = None,
    all_sessions: Annotated[
        bool,
        typer.Option(
            "--all",
            help="stop every session of the data dir through the session host; works with "
            "no server running",
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="data dir whose sessions --all stops [AGENTPTY_DATA_DIR]"),
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a project's session (its conversation stays resumable), or --all of them."""
    if all_sessions:
        if project is not None:
            raise CliError("give a PROJECT or --all, not both")
        _stop_all(data_dir, as_json)
        return
    if project is None:
        raise CliError("name the PROJECT whose session to stop, or give --all")
    with Api(resolve_target(url)) as api:
        info = stop_project(api, project)
    if as_json:
        print_json(info)
        return
    done = "stopped" if info.get("stopped") else "was not running"
    typer.echo(f"{info['project']}: {done}")


def _stop_all(data_dir: Path | None, as_json: bool) -> None:
    """Stop every session the data dir's session host holds (no server needed)."""
    from agentpty.config import Settings
    from agentpty.host.client import stop_all

    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    stopped = asyncio.run(stop_all(settings.run_dir))
    if as_json:
        print_json({"host_running": stopped is not None, "stopped": stopped or {}})
    elif stopped is None:
        typer.echo(f"no session host runs for {settings.data_dir}: no session to stop")
    else:
        typer.echo(f"stopped {len(stopped)} session(s)")


def send(
    project: ProjectArg,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="what to type")],
    no_submit: Annotated[
        bool, typer.Option("--no-submit", help="type the text but do not press Enter")
    ] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Type TEXT into the conversation once the agent is ready (starts it if needed)."""
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        result = api.call(
            "POST",
            f"/api/output-projects/{found['id']}/session/input",
            json={"text": text, "submit": not no_submit},
        )
    if as_json:
        print_json(result)
    elif result.get("delivered"):
        typer.echo(f"{found['name']}: delivered")
    if not result.get("delivered"):
        raise CliError(f"not delivered ({result.get('outcome')}): {result.get('reason')}")


EVENT_COLUMNS: list[Column] = [
    ("TIME", lambda e: age(e.get("created_at"))),
    ("KIND", lambda e: e.get("kind")),
    ("CONVERSATION", lambda e: short(e.get("agent_session_id"))),
    ("DETAIL", lambda e: ", ".join(f"{k}={v}" for k, v in (e.get("detail") or {}).items())),
]


def events(
    project: ProjectArg,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help=f"keep printing new events (asks every {FOLLOW_INTERVAL:g} s)"
        ),
    ] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A project's session history: started/resumed, exited, expired, id changed."""
    with Api(resolve_target(url)) as api:
        found = api.project(project)
        path = f"/api/output-projects/{found['id']}/events"
        shown: set[str] = set()
        header = True
        while True:
            fresh = [e for e in api.call("GET", path)["events"] if e["id"] not in shown]
            shown.update(e["id"] for e in fresh)
            if as_json:
                if follow:
                    for event in fresh:
                        print_json(event)
                else:
                    print_json(fresh)
            elif fresh or header:
                _print_events(fresh, header)
            header = False
            if not follow:
                return
            # A client-side follow: the server offers no per-project stream to wait on.
            try:
                time.sleep(FOLLOW_INTERVAL)
            except KeyboardInterrupt:
                return


def _print_events(rows: list[dict[str, Any]], header: bool) -> None:
    if header:
        print_table(rows, EVENT_COLUMNS, "no events yet")
        return
    # Later batches line up under the first without repeating the header.
    for event in rows:
        typer.echo("  ".join(str(get(event) or "-") for _, get in EVENT_COLUMNS))
