"""Bad input gets a clear 4xx or error frame; start-up refuses what it cannot make safe."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from agentpty.api.auth import host_allowed
from agentpty.api.connections import AcceptErrorLog
from agentpty.api.throttle import FailureThrottle
from agentpty.service.container import build_profiles
from tests.helpers import (
    RunningServer,
    clean_shell,
    create_milestone,
    make_settings,
    serve,
    timeout,
)
from tests.test_abuse import running

FAKE_AGENT = str(Path(__file__).with_name("fake_agent.py"))
SURROGATE = "\ud800"


def raw_json(body: dict[str, Any]) -> str:
    """JSON text as a hostile client writes it: lone surrogates as \\uXXXX escapes."""
    return json.dumps(body)  # ensure_ascii escapes a lone surrogate instead of failing


async def test_bad_text_in_every_body_gets_422_naming_the_field(server: RunningServer) -> None:
    """Lone surrogates and NUL in REST body fields answer 422 with the field's name, never 500."""
    project = await server.create_project()
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/output-projects", {"name": SURROGATE}, "name"),
        ("/api/output-projects", {"name": "n\x00"}, "name"),
        ("/api/output-projects", {"name": "ok", "workspace_path": "a\x00b"}, "workspace_path"),
        ("/api/output-projects", {"name": "ok", "agent": "sh\udfffell"}, "agent"),
        ("/api/milestones", {"output_project_id": project, "title": SURROGATE}, "title"),
        (
            "/api/milestones",
            {"output_project_id": project, "title": "t", "context": "a\udc80b"},
            "context",
        ),
        ("/api/milestones", {"output_project_id": "p\x00", "title": "t"}, "output_project_id"),
        (f"/api/output-projects/{project}/session/input", {"text": SURROGATE}, "text"),
        (f"/api/output-projects/{project}/runs", {"prompt": "x" + SURROGATE}, "prompt"),
    ]
    async with server.http() as http:
        for path, body, field in cases:
            response = await http.post(
                path, content=raw_json(body), headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, (path, body, response.text)
            detail = response.json()["detail"]
            assert [e for e in detail if e["loc"][-1] == field], (path, detail)
        key = server.services.hooks.key(project)
        hook = await http.post(
            f"/api/hooks/claude/{project}?key={key}",
            content=raw_json({"session_id": SURROGATE}),
            headers={"Content-Type": "application/json"},
        )
        assert hook.status_code == 422 and hook.json()["detail"][0]["loc"][-1] == "session_id"
        assert (await http.get(f"/api/output-projects/{project}")).status_code == 200


async def test_huge_integers_in_query_parameters_get_422(server: RunningServer) -> None:
    """skip/limit beyond any store's range answer 422, not a database overflow 500."""
    async with server.http() as http:
        for path in ("/api/output-projects", "/api/milestones"):
            for query in ("skip=99999999999999999999999", "limit=99999999999999999999999"):
                response = await http.get(f"{path}?{query}")
                assert response.status_code == 422, (path, query, response.text)
            assert (await http.get(f"{path}?skip=1000000000")).status_code == 200


async def test_bad_websocket_frames_get_error_frames_and_the_session_goes_on(
    server: RunningServer,
) -> None:
    """A lone surrogate in input gets an error frame naming 'data'; NUL is a keystroke."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        await term.recv_type("status")
        await term.ws.send('{"type":"input","data":"\\ud800"}')
        error = await term.recv_type("error")
        assert error["code"] == "INVALID_MESSAGE" and "'data'" in error["message"]
        await term.ws.send('{"type":"resize","rows":99999999999999999999,"cols":1}')
        assert (await term.recv_type("error"))["code"] == "INVALID_MESSAGE"
        await term.type("\x00")  # Ctrl-@: passed on, no error
        await term.type("echo still-$((20+22))\r")
        await term.read_until("still-42")
        errors = [frame for frame in term.frames if frame["type"] == "error"]
        assert len(errors) == 2, errors  # the surrogate and the resize, not the NUL


async def test_forged_conversation_ids_are_refused(tmp_path: Path) -> None:
    """A hook reporting an id that is not a UUID is refused with 400 and a logged warning."""
    settings = make_settings(tmp_path / "data", claude_bin=FAKE_AGENT)
    profiles = build_profiles(settings)
    profiles["shell"] = clean_shell()
    async with serve(settings, profiles) as server:
        claude = await server.create_project("c", agent="claude")
        shell = await server.create_project("s", agent="shell")
        async with server.http() as http:
            for project, forged in (
                (claude, "../../../../etc/passwd"),
                (claude, "*"),
                (claude, "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
                (shell, "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
            ):
                key = server.services.hooks.key(project)
                response = await http.post(
                    f"/api/hooks/{project}?key={key}",
                    json={"session_id": forged, "hook_event_name": "SessionStart"},
                )
                assert response.status_code == 400, (forged, response.text)
                detail = response.json()["detail"]
                # The shell reports through no hook at all; Claude's ids are UUIDs.
                assert "not a conversation id" in detail or "does not report" in detail
                stored = await server.services.store.get_project(project)
                assert stored.agent_session_id != forged
            good = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
            key = server.services.hooks.key(claude)
            response = await http.post(
                f"/api/hooks/claude/{claude}?key={key}",
                json={"session_id": good, "hook_event_name": "SessionStart"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["changed"], body["report"]) == (True, "conversation_started")
            assert body["agent_state"] == "idle"  # SessionStart: the agent waits at its prompt


async def test_healthz_reports_a_corrupt_database(tmp_path: Path) -> None:
    """With a page in the middle of the SQLite file overwritten, /healthz answers 503."""
    data = tmp_path / "data"
    async with serve(make_settings(data)) as server, server.http() as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        project = await server.create_project()
        for n in range(40):
            await create_milestone(http, project, f"m{n}", context="c" * 20_000)
    database = data / "agentpty.db"
    size = database.stat().st_size
    with database.open("r+b") as handle:
        handle.seek(size // 2 - (size // 2) % 4096)
        handle.write(os.urandom(4096 * 4))
    async with serve(make_settings(data)) as server, server.http() as http:
        response = await http.get("/healthz")
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "failing" and "agentpty.db" in response.json()["store"]


async def start_and_fail(env: dict[str, str]) -> tuple[int, list[str]]:
    """Run ``agentpty serve`` expecting it to stop at start; its exit code and stderr lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "serve",
        env={**os.environ, "AGENTPTY_PORT": "0", "AGENTPTY_TOKEN": "t" * 20, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout(30)):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode().strip().splitlines()


async def test_unusable_data_dir_stops_start_with_one_line(tmp_path: Path) -> None:
    """A data dir that is a file, or another user's, stops the server with one line, exit 1."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    code, lines = await start_and_fail({"AGENTPTY_DATA_DIR": str(not_a_dir / "sub")})
    assert code == 1 and len(lines) == 1 and str(not_a_dir) in lines[0], lines
    assert "--data-dir" in lines[0]
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 12345, 12345)
        code, lines = await start_and_fail({"AGENTPTY_DATA_DIR": str(foreign)})
        assert code == 1 and len(lines) == 1 and "belongs to user id 12345" in lines[0], lines


async def test_data_dir_and_its_secrets_are_made_private(tmp_path: Path) -> None:
    """At start the data dir becomes 0700 and its files 0600; a shared token file is warned of."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "token").write_text("a-stored-token-of-enough-length\n")
    (data / "token").chmod(0o644)
    env = {"AGENTPTY_TOKEN": ""}
    async with running(tmp_path, **env) as server, server.http() as http:
        await http.get("/healthz")
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("token", "agentpty.db", "claude-settings.json"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        assert any("readable by other users" in line for line in server.log), server.log


def test_failure_throttle_allows_a_burst_then_the_rate() -> None:
    """Failures beyond the burst are refused until the bucket refills at the rate."""
    now = [0.0]
    throttle = FailureThrottle(rate=2, clock=lambda: now[0])
    for _ in range(4):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert throttle.retry_after("a") == pytest.approx(0.5)
    assert throttle.retry_after("b") == 0  # per address
    now[0] = 0.5
    assert throttle.retry_after("a") == 0


@pytest.mark.parametrize(
    ("host", "bound", "allowed", "ok"),
    [
        ("127.0.0.1:8484", "127.0.0.1", "", True),
        ("localhost:8484", "127.0.0.1", "", True),
        ("app.localhost", "127.0.0.1", "", True),
        ("[::1]:8484", "127.0.0.1", "", True),
        ("evil.example:8484", "127.0.0.1", "", False),
        ("evil.example", "0.0.0.0", "", False),
        ("192.168.1.5:8484", "0.0.0.0", "", True),
        ("192.168.1.5:8484", "127.0.0.1", "", False),
        ("box.lan:8484", "0.0.0.0", "box.lan", True),
        ("BOX.LAN.", "0.0.0.0", "box.lan", True),
        ("", "127.0.0.1", "", False),
        (None, "127.0.0.1", "", True),
    ],
)
def test_host_check(host: str | None, bound: str, allowed: str, ok: bool) -> None:
    """Host names must be loopback, bound or allowed; IP literals need no DNS and pass."""
    assert host_allowed(host, bound, frozenset(filter(None, [allowed]))) is ok


def test_accept_errors_are_logged_once_a_second_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of EMFILE accept errors becomes one log line a second, counting the rest."""
    now = [100.0]
    handler = AcceptErrorLog(clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        error = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        with caplog.at_level(logging.ERROR, logger="agentpty.api.connections"):
            for n in range(1000):
                now[0] = 100.0 + n / 1000
                handler(
                    loop, {"message": "socket.accept() out of system resource", "exception": error}
                )
            now[0] = 101.5
            handler(loop, {"message": "accept", "exception": error})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "999 more like it" in lines[1]


async def test_websocket_handshake_with_a_foreign_host_is_refused(server: RunningServer) -> None:
    """A WebSocket upgrade naming a foreign Host is refused (403) before it is accepted."""
    project = await server.create_project()
    port = int(server.base_url.rsplit(":", 1)[1])
    path = f"/api/output-projects/{project}/terminal?token={server.token}"
    answers = {}
    for host in ("evil.example", f"127.0.0.1:{port}"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            async with asyncio.timeout(timeout(20)):
                answers[host] = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
    assert answers["evil.example"].startswith(b"HTTP/1.1 403"), answers
    assert answers[f"127.0.0.1:{port}"].startswith(b"HTTP/1.1 101"), answers
