"""Command line: ``agentpty serve`` and ``agentpty hook``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["main"]

app = typer.Typer(add_completion=False, help="One long-lived, resumable agent session per project.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address [AGENTPTY_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port, 0 for any [AGENTPTY_PORT]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="[AGENTPTY_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[AGENTPTY_DATABASE_URL]")] = None,
    workspaces_root: Annotated[Path | None, typer.Option(help="[AGENTPTY_WORKSPACES_ROOT]")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="[AGENTPTY_IDLE_TIMEOUT]")] = None,
    default_agent: Annotated[str | None, typer.Option(help="[AGENTPTY_DEFAULT_AGENT]")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve until SIGINT or SIGTERM; agents keep running in the session host (see stop)."""
    from agentpty.server import run

    overrides = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "database_url": database_url,
        "workspaces_root": workspaces_root,
        "idle_timeout": idle_timeout,
        "default_agent": default_agent,
    }
    code = asyncio.run(run({k: v for k, v in overrides.items() if v is not None}, log_level))
    raise typer.Exit(code)


@app.command()
def stop(
    all_sessions: Annotated[
        bool, typer.Option("--all", help="stop every session of the data dir")
    ] = False,
    data_dir: Annotated[Path | None, typer.Option(help="[AGENTPTY_DATA_DIR]")] = None,
) -> None:
    """Stop agent sessions, with or without a server running (talks to the session host)."""
    from agentpty.config import Settings
    from agentpty.host.client import stop_all

    if not all_sessions:
        print("agentpty stop: say which sessions: --all", file=sys.stderr)
        raise typer.Exit(2)
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    stopped = asyncio.run(stop_all(settings.run_dir))
    if stopped is None:
        print(f"no session host runs for {settings.data_dir}: no session to stop")
        return
    print(f"stopped {len(stopped)} session(s)")


@app.command()
def hook() -> None:
    """Claude Code hook: forward the event on stdin to the agentpty server that started us.

    Never fails the agent: problems are reported on stderr and the exit code is 0.
    """
    url = os.environ.get("AGENTPTY_HOOK_URL")
    if not url:
        return
    try:
        event = json.load(sys.stdin)
        request = urllib.request.Request(
            url,
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f"agentpty hook: could not report to the server: {exc}", file=sys.stderr)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()
