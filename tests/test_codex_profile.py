"""The codex profile on payloads recorded from the real CLI (tests/data/codex/), no CLI run."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.capabilities import (
    ConversationSupport,
    HeadlessSupport,
    RunEventKind,
)
from agentpty.agents.codex import CodexProfile

DATA = Path(__file__).parent / "data" / "codex"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def _meta(name: str) -> dict[str, Any]:
    payload = _lines(name)[0]["payload"]
    assert isinstance(payload, dict)
    return payload


def _started(name: str) -> datetime:
    return datetime.fromisoformat(str(_meta(name)["timestamp"]).replace("Z", "+00:00"))


def _profile(tmp_path: Path, *names: str) -> CodexProfile:
    """A profile whose CODEX_HOME holds the recorded rollouts ``names``."""
    day = tmp_path / "home" / "sessions" / "2026" / "12" / "01"
    day.mkdir(parents=True)
    for name in names:
        found = _meta(name)["id"]
        shutil.copy(DATA / name, day / f"rollout-2026-12-01T10-00-00-{found}.jsonl")
    return CodexProfile({"CODEX_HOME": str(tmp_path / "home"), "PATH": ""})


def test_profile_declares_the_capability_interfaces(tmp_path: Path) -> None:
    """The profile's conversations and headless parts satisfy agentpty's interfaces."""
    profile = _profile(tmp_path)
    conversations: ConversationSupport = profile.conversations
    headless: HeadlessSupport = profile.headless
    assert conversations.chooses_id is False
    assert headless is profile.headless
    assert profile.hooks is None
    with pytest.raises(NotImplementedError):
        conversations.new_id()


def test_valid_id_accepts_recorded_ids_only(tmp_path: Path) -> None:
    """Ids Codex recorded are valid; anything that could be a path or a flag is not."""
    conversations = _profile(tmp_path).conversations
    for name in ("rollout-interactive.jsonl", "rollout-exec.jsonl", "rollout-meta-only.jsonl"):
        assert conversations.valid_id(_meta(name)["id"])
    for bad in ("", "--help", "../../etc/passwd", "*", "01A23144-19B4-7233-9768-0CAD6FB599E1"):
        assert not conversations.valid_id(bad)


def test_exists_needs_a_message(tmp_path: Path) -> None:
    """A rollout with a typed prompt exists; one holding only session_meta or none does not."""
    profile = _profile(tmp_path, "rollout-interactive.jsonl", "rollout-meta-only.jsonl")
    conversations = profile.conversations
    assert conversations.exists(_meta("rollout-interactive.jsonl")["id"])
    assert not conversations.exists(_meta("rollout-meta-only.jsonl")["id"])
    assert not conversations.exists("01a23144-0000-7000-8000-000000000000")
    assert not conversations.exists("*")


def test_discover_finds_the_interactive_conversation_of_its_folder(tmp_path: Path) -> None:
    """discover returns the TUI conversation begun in cwd after `since`, never an exec one."""
    name = "rollout-interactive.jsonl"
    profile = _profile(tmp_path, name, "rollout-exec.jsonl")
    cwd, started = str(_meta(name)["cwd"]), _started(name)
    found = profile.conversations.discover(cwd, started - timedelta(seconds=5))
    assert found == _meta(name)["id"]
    # The exec rollout was recorded in the same folder but is a headless run.
    assert _meta("rollout-exec.jsonl")["cwd"] == cwd
    assert profile.conversations.discover(cwd, started + timedelta(seconds=1)) is None
    assert profile.conversations.discover("/elsewhere", started - timedelta(seconds=5)) is None


def test_headless_events_parse_into_run_events(tmp_path: Path) -> None:
    """A recorded exec --json run reads as INIT (with the id), MESSAGEs, RESULT."""
    headless = _profile(tmp_path).headless
    events = [e for e in map(headless.parse, _lines("exec-new.jsonl")) if e is not None]
    assert [e.kind for e in events] == [
        RunEventKind.INIT,
        RunEventKind.MESSAGE,
        RunEventKind.MESSAGE,
        RunEventKind.RESULT,
    ]
    assert events[0].conversation_id == _lines("exec-new.jsonl")[0]["thread_id"]
    assert events[1].is_error  # "Model metadata for `gpt-fake` not found"
    assert events[2].text == "turn=1" and not events[2].is_error
    assert not events[3].is_error
    resumed = [e for e in map(headless.parse, _lines("exec-resume.jsonl")) if e is not None]
    assert resumed[0].conversation_id == events[0].conversation_id
    assert resumed[2].text == "turn=2"


def test_failed_headless_run_ends_in_an_error_result(tmp_path: Path) -> None:
    """A recorded run whose API call failed ends with a RESULT marked as an error."""
    headless = _profile(tmp_path).headless
    events = [e for e in map(headless.parse, _lines("exec-failed.jsonl")) if e is not None]
    assert events[-1].kind is RunEventKind.RESULT and events[-1].is_error
    assert "bad request (fake)" in (events[-1].text or "")


def test_launch_resumes_only_a_conversation_with_messages(tmp_path: Path) -> None:
    """`codex resume <id>` for a rollout with a prompt, a fresh start otherwise; bad ids refused."""
    profile = _profile(tmp_path, "rollout-interactive.jsonl", "rollout-meta-only.jsonl")
    known = _meta("rollout-interactive.jsonl")["id"]
    fresh = profile.launch(cwd=str(tmp_path), conversation_id=None, initial_prompt="-x")
    assert fresh.argv[1:] == ["--no-daemon", "--", "-x"] and not fresh.resumed
    again = profile.launch(cwd=str(tmp_path), conversation_id=known)
    assert again.argv[1:] == ["resume", "--no-daemon", known] and again.resumed
    empty = _meta("rollout-meta-only.jsonl")["id"]
    unused = profile.launch(cwd=str(tmp_path), conversation_id=empty)
    assert unused.argv[1:] == ["--no-daemon"] and not unused.resumed
    with pytest.raises(ValueError, match="not a Codex conversation id"):
        profile.launch(cwd=str(tmp_path), conversation_id="--last")


def test_headless_launch_resumes_only_an_existing_conversation(tmp_path: Path) -> None:
    """exec resumes a conversation that has messages and starts afresh otherwise."""
    profile = _profile(tmp_path, "rollout-interactive.jsonl", "rollout-meta-only.jsonl")
    known = _meta("rollout-interactive.jsonl")["id"]
    run = profile.headless.launch(cwd=str(tmp_path), prompt="p", conversation_id=known)
    assert run.argv[1:] == ["exec", "--json", "--skip-git-repo-check", "resume", known, "--", "p"]
    assert run.resumed
    empty = _meta("rollout-meta-only.jsonl")["id"]
    run = profile.headless.launch(cwd=str(tmp_path), prompt="p", conversation_id=empty)
    assert "resume" not in run.argv and not run.resumed


def test_missing_binary_names_the_install_command(tmp_path: Path) -> None:
    """Without the CLI on PATH the profile says how to install it."""
    reason = _profile(tmp_path).unavailable_reason()
    assert reason is not None and "npm install -g @openai/codex" in reason
