"""The Claude profile's capabilities, each on its own: no process, real files."""

from __future__ import annotations

import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentpty.agents.base import AgentProfile
from agentpty.agents.capabilities import (
    AgentReport,
    HookEndpoint,
    ReportKind,
    RunEvent,
    RunEventKind,
)
from agentpty.agents.claude import ClaudeProfile
from agentpty.agents.claude_hooks import HOOK_EVENTS
from agentpty.agents.shell import ShellProfile


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "claude-config"


@pytest.fixture
def profile(config: Path) -> ClaudeProfile:
    return ClaudeProfile({"CLAUDE_CONFIG_DIR": str(config), "PATH": "/nonexistent"})


def write_transcript(config: Path, conversation_id: str, *types: str) -> Path:
    path = config / "projects" / "-work-proj" / f"{conversation_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"type": kind}) + "\n" for kind in types))
    return path


def test_profiles_satisfy_the_protocol(profile: ClaudeProfile) -> None:
    """Both built-in profiles are AgentProfiles; the shell declares markers only."""
    shell = ShellProfile({})
    profiles: list[AgentProfile] = [profile, shell]
    assert [p.name for p in profiles] == ["claude", "shell"]
    assert (shell.conversations, shell.hooks, shell.headless) == (None, None, None)
    assert shell.markers.ready is None and not shell.markers.expired


def test_new_conversation_uses_the_chosen_id(profile: ClaudeProfile) -> None:
    """A fresh id is a UUID the profile accepts; with no transcript it starts under it."""
    conversations = profile.conversations
    assert conversations.chooses_id is True
    new = conversations.new_id()
    assert conversations.valid_id(new) and new != conversations.new_id()
    launch = profile.launch(cwd="/work/proj", conversation_id=new)
    assert f"--session-id={new}" in launch.argv and launch.resumed is False


def test_resume_needs_a_message_in_the_transcript(profile: ClaudeProfile, config: Path) -> None:
    """A transcript with only metadata is not resumable; one with a user line is."""
    conversation_id = str(uuid.uuid4())
    write_transcript(config, conversation_id, "summary")
    assert profile.conversations.exists(conversation_id) is False
    write_transcript(config, conversation_id, "summary", "user")
    assert profile.conversations.exists(conversation_id) is True
    launch = profile.launch(cwd="/work/proj", conversation_id=conversation_id, initial_prompt="-x")
    assert launch.resumed is True
    assert launch.argv[1:] == [f"--resume={conversation_id}", "--", "-x"]


def test_malformed_ids_are_refused_and_never_globbed(profile: ClaudeProfile, config: Path) -> None:
    """valid_id refuses anything but a UUID; such an id never reaches a file pattern."""
    conversations = profile.conversations
    for bad in ("*", "../x", "", "ABC", str(uuid.uuid4()).upper(), f"{uuid.uuid4()}\n"):
        assert conversations.valid_id(bad) is False, bad
    write_transcript(config, "anything", "user")
    assert conversations.exists("*") is False
    assert conversations.transcript("*") is None


def test_discover_finds_nothing_for_chosen_ids(profile: ClaudeProfile) -> None:
    """An agent whose ids agentpty chooses has nothing to discover."""
    assert profile.conversations.discover("/work/proj", datetime.now(UTC)) is None


def test_hooks_install_writes_settings_passed_on_start(
    profile: ClaudeProfile, tmp_path: Path
) -> None:
    """install writes an http hook for every event but SessionStart, which runs the command."""
    command = ["/usr/bin/python3 x", "-m", "agentpty", "hook"]
    endpoint = HookEndpoint("http://127.0.0.1:1/api/hooks", {"X-Project": "PROJECT_VAR"}, command)
    assert profile.hooks.settings_path is None
    profile.hooks.install(tmp_path / "data", endpoint)
    path = profile.hooks.settings_path
    assert path is not None and path.parent == tmp_path / "data"
    assert path.stat().st_mode & 0o777 == 0o600
    settings = json.loads(path.read_text())
    assert set(settings["hooks"]) == set(HOOK_EVENTS)
    assert {"SessionStart", "UserPromptSubmit", "PermissionRequest", "Stop"} <= set(HOOK_EVENTS)
    for event in HOOK_EVENTS:
        entry = settings["hooks"][event][0]["hooks"][0]
        if event == "SessionStart":
            assert shlex.split(entry["command"]) == command
            continue
        assert entry == {
            "type": "http",
            "url": endpoint.url,
            "headers": {"X-Project": "${PROJECT_VAR}"},
            "allowedEnvVars": ["PROJECT_VAR"],
            "timeout": 10,
        }, event
    assert f"--settings={path}" in profile.launch(cwd="/w", conversation_id=None).argv


def test_hooks_parse_into_reports(profile: ClaudeProfile) -> None:
    """SessionStart, UserPromptSubmit and Stop become reports; events not used give None."""
    cid = str(uuid.uuid4())
    parse = profile.hooks.parse
    started = {"hook_event_name": "SessionStart", "session_id": cid, "source": "clear"}
    assert parse(started) == AgentReport(
        ReportKind.CONVERSATION_STARTED, cid, source="clear", fresh=True
    )
    prompt = {"hook_event_name": "UserPromptSubmit", "session_id": cid, "prompt": "hi"}
    assert parse(prompt) == AgentReport(ReportKind.PROMPT_SUBMITTED, cid, prompt="hi")
    stop = AgentReport(ReportKind.TURN_ENDED, cid, source="Stop")
    assert parse({"hook_event_name": "Stop", "session_id": cid}) == stop
    assert parse({"hook_event_name": "PreCompact", "session_id": cid}) is None
    odd = parse({"hook_event_name": "SessionStart", "session_id": 7})
    assert odd is not None and odd.conversation_id is None


def test_headless_argv_resumes_like_the_terminal(profile: ClaudeProfile, config: Path) -> None:
    """Headless: -p with stream-json; --session-id for a new id, --resume once it has messages."""
    cid = str(uuid.uuid4())
    launch = profile.headless.launch(cwd="/w", prompt="-hi", conversation_id=cid)
    assert launch.argv[1:5] == [
        "-p",
        "--output-format=stream-json",
        "--verbose",
        f"--session-id={cid}",
    ]
    assert launch.argv[-2:] == ["--", "-hi"] and launch.resumed is False
    write_transcript(config, cid, "user")
    resumed = profile.headless.launch(cwd="/w", prompt="x", conversation_id=cid)
    assert f"--resume={cid}" in resumed.argv and resumed.resumed is True


def test_headless_parse_stream_json(profile: ClaudeProfile) -> None:
    """init, assistant text, result (ok and error) become RunEvents; other events are skipped."""
    parse = profile.headless.parse
    cid = str(uuid.uuid4())
    assert parse({"type": "system", "subtype": "init", "session_id": cid}) == RunEvent(
        RunEventKind.INIT, cid
    )
    content = [{"type": "text", "text": "tu"}, {"type": "tool_use"}, {"type": "text", "text": "rn"}]
    message = parse({"type": "assistant", "message": {"content": content}, "session_id": cid})
    assert message == RunEvent(RunEventKind.MESSAGE, cid, text="turn")
    ok = {"type": "result", "result": "turn=1", "total_cost_usd": 0.5, "duration_ms": 7}
    assert parse({**ok, "session_id": cid}) == RunEvent(
        RunEventKind.RESULT, cid, text="turn=1", cost_usd=0.5, duration_ms=7
    )
    failed = parse({"type": "result", "is_error": True, "subtype": "error_max_turns"})
    assert failed is not None and failed.is_error and "error_max_turns" in (failed.text or "")
    assert parse({"type": "system", "subtype": "hook_response"}) is None
    assert parse({"type": "stream_event"}) is None
