"""Property tests over every REST body and the WebSocket protocol of a real server.

Property: any input gets a 4xx or an error frame, never a 500; the terminal
connection and its session survive every frame; the server still answers.
The agent is a stand-in: a shell script that puts its terminal in raw mode and
discards what it reads, so fuzzed keystrokes cannot end it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from agentpty.host.client import kill_host
from tests.helpers import TOKEN, timeout

EXAMPLES = int(os.environ.get("AGENTPTY_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Any code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, min_codepoint=0), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
#: Field values: wrong types, huge numbers, hostile text, and plausible ones.
field_values = (
    json_values
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.text(max_size=10)
    | st.sampled_from(["", "\x00", "\ud800", "../../etc/passwd", "x" * 70_000])
)


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    """Objects with some of ``fields`` (and extras) set to anything, or any JSON at all."""
    named = st.dictionaries(st.sampled_from(fields), field_values, max_size=len(fields))
    extra = st.dictionaries(any_text, field_values, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, named, extra) | json_values


@dataclass
class Fuzzed:
    base: str
    project: str
    hook_url: str
    agent_pid: int
    #: One keep-alive client for every example (a connection each would be most of the time).
    http: httpx.Client


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """``agentpty serve`` with one project whose stand-in agent is running."""
    root = tmp_path_factory.mktemp("fuzz")
    agent = root / "raw-sink.sh"
    env_file = root / "agent-env"
    agent.write_text(f"#!/bin/sh\nenv > {env_file}\nstty raw -echo\nexec cat > /dev/null\n")
    agent.chmod(0o755)
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "agentpty", "serve"],
        env={
            **os.environ,
            "AGENTPTY_PORT": "0",
            "AGENTPTY_TOKEN": TOKEN,
            "AGENTPTY_DATA_DIR": str(root / "data"),
            "AGENTPTY_DEFAULT_AGENT": "shell",
            "SHELL": str(agent),
            # The sink never prints: delivery of fuzzed input needs no long quiet wait.
            "AGENTPTY_QUIET_TIME": "0.05",
            "AGENTPTY_SUBMIT_PAUSE": "0",
        },
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        base = match.group(1)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout(30)
        ) as http:
            project = http.post("/api/output-projects", json={"name": "fuzz"}).json()["id"]
            started = http.post(f"/api/output-projects/{project}/session").json()
            hook_url = _hook_url(env_file)
            yield Fuzzed(base, project, hook_url, started["pid"], http)
        with httpx.Client(base_url=base, timeout=timeout(30)) as http:
            assert http.get("/healthz").status_code == 200
        server_log = (root / "server.log").read_text(errors="replace")
        assert "Traceback" not in server_log, server_log[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout(30))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
            log.close()
            # The server detached from its agents: end the session host it started too.
            kill_host(root / "data" / "run")


def _hook_url(env_file: Path) -> str:
    """The hook URL the stand-in agent found in its environment (it writes it at start)."""
    deadline = time.monotonic() + timeout(20)
    while time.monotonic() < deadline:
        text = env_file.read_text() if env_file.exists() else ""
        if "AGENTPTY_HOOK_URL=" in text and text.endswith("\n"):
            return text.split("AGENTPTY_HOOK_URL=", 1)[1].splitlines()[0]
        time.sleep(0.05)  # a file has no event to wait on
    raise AssertionError("the stand-in agent never wrote its environment")


def post(fuzzed: Fuzzed, path: str, body: Any, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return fuzzed.http.post(path, content=content, headers={"Content-Type": "application/json"})


def check(response: httpx.Response) -> None:
    """A 2xx or a 4xx whose JSON says what was wrong; never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.json()["detail"], response.text


@FUZZ
@given(body=bodies(["name", "agent", "workspace_path"]))
def test_create_project_bodies(fuzzed: Fuzzed, body: Any) -> None:
    """POST /api/output-projects with any JSON: 201 or a 4xx, never a 500."""
    check(post(fuzzed, "/api/output-projects", body))


@FUZZ
@given(body=bodies(["output_project_id", "title", "context"]), own_project=st.booleans())
def test_create_milestone_bodies(fuzzed: Fuzzed, body: Any, own_project: bool) -> None:
    """POST /api/milestones with any JSON: 201 or a 4xx, never a 500."""
    if own_project and isinstance(body, dict):
        body["output_project_id"] = fuzzed.project
    check(post(fuzzed, "/api/milestones", body))


@FUZZ
@given(body=bodies(["text", "submit", "rows", "cols", "prompt"]))
def test_session_and_run_bodies(fuzzed: Fuzzed, body: Any) -> None:
    """Session input/start and headless runs with any JSON: never a 500; the agent lives on."""
    for path in ("session/input", "session", "runs"):
        check(post(fuzzed, f"/api/output-projects/{fuzzed.project}/{path}", body))
    info = fuzzed.http.get(f"/api/output-projects/{fuzzed.project}/session").json()
    assert info["pid"] == fuzzed.agent_pid and info["state"] == "running", info


@FUZZ
@given(body=bodies(["session_id", "hook_event_name", "source"]))
def test_hook_bodies(fuzzed: Fuzzed, body: Any) -> None:
    """The hook endpoint (with its real key) refuses malformed events with a 4xx."""
    check(post(fuzzed, fuzzed.hook_url.removeprefix(fuzzed.base), body))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_raw_bytes_bodies(fuzzed: Fuzzed, raw: bytes) -> None:
    """Bytes that are not JSON (or not UTF-8) get a 4xx on every body-taking route."""
    for path in ("/api/output-projects", "/api/milestones"):
        check(post(fuzzed, path, None, raw=raw))


def frames() -> st.SearchStrategy[str | bytes]:
    """Client frames: each message type with fields of any type, any JSON, any bytes."""
    message = st.fixed_dictionaries(
        {"type": st.sampled_from(["input", "resize", "signal"]) | any_text},
        optional={
            "data": field_values,
            "rows": field_values,
            "cols": field_values,
            # Valid signals end the process on purpose: only invalid ones here.
            "signal": field_values.filter(lambda v: v not in ("SIGINT", "SIGTERM")),
        },
    )
    return message.map(json.dumps) | json_values.map(json.dumps) | st.binary(max_size=200)


def sentinel_answered(ws: ClientConnection, tag: str) -> list[dict[str, Any]]:
    """Send a frame the server must refuse and read up to its error: the link is alive."""
    ws.send(json.dumps({"type": tag}))
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout(20)))
        seen.append(frame)
        assert frame["type"] not in ("closed",), frame
        if frame["type"] == "error" and tag in frame["message"]:
            return seen


def test_websocket_frames(fuzzed: Fuzzed) -> None:
    """Any frame gets an error frame or is used; the connection and the session go on."""
    url = fuzzed.base.replace("http", "ws", 1)
    path = f"/api/output-projects/{fuzzed.project}/terminal?token={TOKEN}"
    with connect(url + path, max_size=None, open_timeout=timeout(20)) as ws:
        assert json.loads(ws.recv(timeout=timeout(20)))["type"] == "status"
        count = [0]

        @FUZZ
        @given(frame=frames())
        def one(frame: str | bytes) -> None:
            count[0] += 1
            ws.send(frame)
            sentinel_answered(ws, f"sentinel-{count[0]}")

        one()
    info = fuzzed.http.get(f"/api/output-projects/{fuzzed.project}/session").json()
    assert info["pid"] == fuzzed.agent_pid and info["state"] == "running", info
