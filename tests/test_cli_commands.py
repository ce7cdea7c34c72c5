"""The client commands as separate processes against a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.cli_pty import cli_env, run_cli
from tests.helpers import RunningServer, free_port, timeout


async def test_projects_new_list_and_rm(server: RunningServer) -> None:
    """Projects are created, listed as a table and as JSON, and removed (files stay)."""
    env = cli_env(server.base_url)
    made = await run_cli(["projects", "new", "billing", "--agent", "shell", "--json"], env)
    assert made.code == 0, made.stderr
    project = json.loads(made.stdout)
    assert project["name"] == "billing" and project["agent"] == "shell"
    custom = await run_cli(["projects", "new", "legacy", "--workspace", "src/legacy"], env)
    assert custom.code == 0 and "workspaces/src/legacy" in custom.stdout

    table = await run_cli(["projects"], env)
    assert table.code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "AGENT", "SESSION"]
    assert any(row.startswith(project["id"][:8]) and " billing " in row for row in rows)
    listed = json.loads((await run_cli(["projects", "--json"], env)).stdout)
    assert {p["name"] for p in listed} == {"billing", "legacy"}

    removed = await run_cli(["projects", "rm", "bill"], env)
    assert removed.code == 0, removed.stderr
    assert os.path.isdir(project["workspace_path"])  # noqa: ASYNC240
    names = [p["name"] for p in json.loads((await run_cli(["projects", "--json"], env)).stdout)]
    assert names == ["legacy"]


async def test_start_send_stop_and_events(server: RunningServer) -> None:
    """start runs the session, send types into it, stop ends it, events shows the history."""
    project = await server.create_project("ops")
    env = cli_env(server.base_url)
    started = await run_cli(["start", "ops"], env)
    assert started.code == 0 and "running (pid" in started.stdout, started
    sent = await run_cli(["send", "ops", "echo sent-$((2+3))"], env)
    assert sent.code == 0 and "delivered" in sent.stdout, sent
    async with server.terminal(project) as client:
        await client.recv_type("status")
        await client.read_until("sent-5")
    stopped = await run_cli(["stop", "ops", "--json"], env)
    assert stopped.code == 0 and json.loads(stopped.stdout)["stopped"] is True
    assert server.services.sessions.info(project)["state"] != "running"
    events = json.loads((await run_cli(["events", "ops", "--json"], env)).stdout)
    assert [e["kind"] for e in events] == ["started", "exited"]
    table = await run_cli(["events", "ops"], env)
    assert "started" in table.stdout and "exited" in table.stdout


async def test_events_follow_prints_new_events(server: RunningServer) -> None:
    """events --follow keeps running and prints an event that happens later."""
    project = await server.create_project("watched")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "events",
        "watched",
        "--follow",
        env=cli_env(server.base_url),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout(30)):
            assert (await process.stdout.readline()).startswith(b"no events yet")
            async with server.http() as http:
                response = await http.post(f"/api/output-projects/{project}/session")
                assert response.status_code == 200
            line = await process.stdout.readline()
        assert b"started" in line
    finally:
        process.kill()
        await process.wait()


async def test_milestones_new_list_start_complete_fail(
    server: RunningServer, tmp_path: Path
) -> None:
    """Milestones are created from a file or stdin, listed, started, completed and failed."""
    await server.create_project("work")
    env = cli_env(server.base_url)
    brief = tmp_path / "brief.md"
    brief.write_text("# Scope\nconvert the invoices\n")
    first = await run_cli(
        ["milestones", "new", "work", "Invoices", "--context", str(brief), "--json"], env
    )
    assert first.code == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["context"] == brief.read_text() and one["status"] == "pending"
    second = await run_cli(
        ["milestones", "new", "work", "Reports", "--context", "-", "--json"],
        env,
        stdin=b"from stdin",
    )
    two = json.loads(second.stdout)
    assert two["context"] == "from stdin"

    table = await run_cli(["milestones", "work"], env)
    assert table.code == 0
    assert [line.split()[1] for line in table.stdout.splitlines()[1:]] == ["pending", "pending"]

    started = await run_cli(["milestones", "start", one["id"][:8]], env)
    assert started.code == 0, started.stderr
    assert "in_progress" in started.stdout
    done = await run_cli(["milestones", "complete", one["id"][:10], "--json"], env)
    assert json.loads(done.stdout)["status"] == "completed"
    failed = await run_cli(["milestones", "fail", two["id"]], env)
    assert failed.code == 0 and "failed" in failed.stdout
    again = await run_cli(["milestones", "complete", two["id"]], env)
    assert (
        again.code == 1 and again.stderr.startswith("agentpty: ") and "(HTTP 409)" in again.stderr
    )


async def test_no_server_is_one_line() -> None:
    """With no server at the URL, a command fails with one line naming the fix."""
    result = await run_cli(["projects"], cli_env(f"http://127.0.0.1:{free_port()}"))
    assert result.code == 1
    assert result.stderr.count("\n") == 1
    assert "no agentpty server at" in result.stderr and "agentpty serve" in result.stderr


async def test_wrong_token_is_one_line(server: RunningServer) -> None:
    """A wrong token fails with one line saying where the token came from."""
    result = await run_cli(["projects"], cli_env(server.base_url, AGENTPTY_TOKEN="nope"))
    assert result.code == 1 and result.stderr.count("\n") == 1
    assert "refused the token from AGENTPTY_TOKEN" in result.stderr


async def test_token_file_of_a_local_server_is_used(server: RunningServer, tmp_path: Path) -> None:
    """Without AGENTPTY_TOKEN, the token file in the data dir is read (local servers only)."""
    data = tmp_path / "client-data"
    data.mkdir()
    (data / "token").write_text(server.token + "\n")
    env = cli_env(server.base_url, AGENTPTY_DATA_DIR=str(data))
    del env["AGENTPTY_TOKEN"]
    result = await run_cli(["projects", "--json"], env)
    assert result.code == 0 and json.loads(result.stdout) == []


async def test_unknown_and_ambiguous_projects(server: RunningServer) -> None:
    """An unknown project and an ambiguous prefix each fail with one line; the latter lists them."""
    first = await server.create_project("alpha-one")
    second = await server.create_project("alpha-two")
    env = cli_env(server.base_url)
    unknown = await run_cli(["start", "zeta"], env)
    assert unknown.code == 1 and "no project matches 'zeta'" in unknown.stderr
    ambiguous = await run_cli(["stop", "alpha"], env)
    assert ambiguous.code == 1 and ambiguous.stderr.count("\n") == 1
    assert first[:8] in ambiguous.stderr and second[:8] in ambiguous.stderr
    assert "alpha-one" in ambiguous.stderr and "alpha-two" in ambiguous.stderr
    exact = await run_cli(["start", "alpha-two", "--json"], env)
    assert exact.code == 0 and json.loads(exact.stdout)["state"] == "running"


async def test_bad_request_shows_the_servers_reason(server: RunningServer) -> None:
    """A request the server refuses (unknown agent) shows its reason and the status."""
    result = await run_cli(
        ["projects", "new", "x", "--agent", "nonesuch"], cli_env(server.base_url)
    )
    assert result.code == 1
    assert "nonesuch" in result.stderr and "(HTTP 4" in result.stderr
