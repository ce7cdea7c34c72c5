"""The command line itself: overview, version, help, serve's generated flags, the hook."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from agentpty import __version__
from agentpty.cli.app import app
from agentpty.cli.serve import flag_name
from agentpty.config import Settings
from tests.cli_pty import run_cli
from tests.helpers import free_port, timeout

ENV = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPTY_")}


async def test_no_command_prints_the_overview() -> None:
    """`agentpty` alone prints the overview with the first-run steps and every command."""
    result = await run_cli([], ENV)
    assert result.code == 0
    assert "agentpty projects new demo --agent shell" in result.stdout
    for command in ("serve", "attach", "projects", "milestones", "start", "stop", "send"):
        assert re.search(rf"^  {command}\b", result.stdout, re.M), command


def test_no_help_shows_type_labels() -> None:
    """Every command's help (run in this process) names values by metavars, not types."""
    runner = CliRunner()

    def paths(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(command, "list_commands"):  # a group (serve is built on request)
            for name in command.list_commands(None):
                found += paths(command.get_command(None, name), [*path, name])
        return found

    every = paths(typer.main.get_command(app), [])
    assert len(every) > 15
    for path in every:
        result = runner.invoke(app, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert not re.search(r"<(str|bool|int|float|path)>|\{[A-Z]+\}", result.output), path


async def test_client_commands_start_without_pydantic() -> None:
    """The command line loads pydantic (the settings, the server's message models) only for
    ``serve``: every other command starts a quarter of a second sooner without it."""
    probe = (
        "import sys; from agentpty.cli.app import app; "
        "print(sorted(m for m in ('pydantic', 'agentpty.config') if m in sys.modules))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, env=ENV, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout(60))
    assert out.decode().strip() == "[]"


async def test_version_and_short_help() -> None:
    """--version prints the version; -h is help on every level."""
    version = await run_cli(["--version"], ENV)
    assert version.stdout.strip() == f"agentpty {__version__}"
    for args in (["-h"], ["attach", "-h"], ["milestones", "new", "-h"], ["serve", "-h"]):
        result = await run_cli(args, ENV)
        assert result.code == 0 and result.stdout.startswith("Usage: agentpty"), args
        # No type labels such as <str> or <bool>, no {ARG} braces.
        assert not re.search(r"<(str|bool|int|float|path)>|\{[A-Z]+\}", result.stdout), args


def test_every_setting_is_a_serve_flag_with_its_description() -> None:
    """serve has one flag per Settings field, helped by the field's own description."""
    command = typer.main.get_command(app)
    serve = command.get_command(None, "serve")  # type: ignore[attr-defined]
    options = {param.name: param for param in serve.params}
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert name in options, f"no flag for Settings.{name}"
        assert flag_name(name) in options[name].opts
        assert field.description.rstrip(".") in (options[name].help or "")
        assert f"AGENTPTY_{name.upper()}" in (options[name].help or "")


async def test_serve_flags_override_and_the_serving_line_comes_last(tmp_path: Path) -> None:
    """Flags reach the settings, and the serving line is printed after uvicorn's own lines."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "flagged"),
        "--token",
        "flag-token-1234567",
        "--no-ws-compression",
        "--idle-timeout",
        "5",
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout(30)):
            while not lines or "serving on" not in lines[-1]:
                lines.append((await process.stdout.readline()).decode())
                assert lines[-1], "".join(lines)
    finally:
        process.terminate()
        await process.wait()
    assert (
        lines[-1].strip()
        == f"agentpty serving on http://127.0.0.1:{port}/?token=flag-token-1234567"
    )
    assert any("Application startup complete" in line for line in lines[:-1])
    assert (tmp_path / "flagged" / "agentpty.db").exists()


async def test_hook_never_fails_the_agent() -> None:
    """`python -m agentpty hook` exits 0 with no server to report to, saying so on stderr."""
    quiet = await run_cli(["hook"], ENV, stdin=b"{}")
    assert (quiet.code, quiet.stderr) == (0, "")
    env = {**ENV, "AGENTPTY_HOOK_URL": f"http://127.0.0.1:{free_port()}/hook"}
    unreachable = await run_cli(["hook"], env, stdin=b'{"hook_event_name": "Stop"}')
    assert unreachable.code == 0 and "could not report" in unreachable.stderr
