"""The typer application: every command, the overview, ``--version`` and ``-h``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from agentpty import __version__
from agentpty.cli import milestones, projects, sessions
from agentpty.cli.client import CliError
from agentpty.cli.hook import hook
from agentpty.cli.options import Command

__all__ = ["app", "main"]

OVERVIEW = """\
One long-lived, resumable coding-agent session per project.

\b
First run (no Claude Code needed):
  agentpty serve &                        # prints its URL with the token
  agentpty projects new demo --agent shell
  agentpty attach demo                    # Ctrl-\\ then d detaches
\b
Every client command finds the server at --url, AGENTPTY_URL or
http://127.0.0.1:8484, and its token in AGENTPTY_TOKEN or the local data dir.
PROJECT may be an id, a name or a unique prefix of either.
"""


class _Root(TyperGroup):
    """The root group; ``serve`` is built when it is asked for.

    Its flags are generated from the settings (pydantic), a quarter of a
    second of imports that a client command (``projects``, ``attach``)
    should not pay at every start.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return ["serve", *super().list_commands(ctx)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name == "serve":
            return _serve_command()
        return super().get_command(ctx, name)


def _serve_command() -> Any:
    from agentpty.cli.serve import serve

    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command("serve", cls=Command)(serve())
    return typer.main.get_command(single)


app = typer.Typer(
    cls=_Root,
    help=OVERVIEW,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentpty {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


app.command(cls=Command)(sessions.attach)
app.add_typer(projects.app, name="projects")
app.command(cls=Command)(sessions.start)
app.command(cls=Command)(sessions.stop)
app.command(cls=Command)(sessions.send)
app.command(cls=Command)(sessions.events)
app.add_typer(milestones.app, name="milestones")
app.command(hidden=True)(hook)


def main() -> None:
    """Run the command line; a ``CliError`` ends it with one line on stderr."""
    try:
        app(prog_name="agentpty")
    except CliError as exc:
        print(f"agentpty: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
