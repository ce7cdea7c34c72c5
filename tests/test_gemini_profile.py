"""The gemini profile on payloads recorded from the real CLI (tests/data/gemini/), no CLI run."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentpty.agents.capabilities import ConversationSupport, HeadlessSupport, RunEventKind
from agentpty.agents.gemini import GeminiProfile

DATA = Path(__file__).parent / "data" / "gemini"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def _id(name: str) -> str:
    return str(_lines(name)[0]["sessionId"])


def _profile(tmp_path: Path, *names: str) -> GeminiProfile:
    """A profile whose Gemini home holds the recorded chat files ``names``."""
    chats = tmp_path / ".gemini" / "tmp" / "proj" / "chats"
    chats.mkdir(parents=True)
    for name in names:
        shutil.copy(DATA / name, chats / f"session-2026-12-01T11-06-{_id(name)[:8]}.jsonl")
    return GeminiProfile({"GEMINI_CLI_HOME": str(tmp_path), "PATH": ""})


def test_profile_declares_the_capability_interfaces(tmp_path: Path) -> None:
    """agentpty chooses Gemini's ids: fresh ids are valid UUIDs, discover is never needed."""
    profile = _profile(tmp_path)
    conversations: ConversationSupport = profile.conversations
    headless: HeadlessSupport = profile.headless
    assert conversations.chooses_id is True and profile.hooks is None
    fresh = conversations.new_id()
    assert conversations.valid_id(fresh) and fresh != conversations.new_id()
    assert conversations.discover(str(tmp_path), datetime.now(UTC)) is None
    assert headless.parse({"type": "unknown"}) is None


def test_valid_id_accepts_recorded_ids_only(tmp_path: Path) -> None:
    """Recorded ids are valid; anything that could be a path or a flag is not."""
    conversations = _profile(tmp_path).conversations
    assert conversations.valid_id(_id("chat-one-prompt.jsonl"))
    for bad in ("", "--resume", "latest", "5", "../x", "*"):
        assert not conversations.valid_id(bad)


def test_exists_needs_a_typed_prompt(tmp_path: Path) -> None:
    """A chat file holding a prompt exists; one holding only the session context does not."""
    profile = _profile(tmp_path, "chat-one-prompt.jsonl", "chat-no-prompt.jsonl")
    assert profile.conversations.exists(_id("chat-one-prompt.jsonl"))
    assert not profile.conversations.exists(_id("chat-no-prompt.jsonl"))
    assert not profile.conversations.exists("00000000-0000-4000-8000-000000000000")


def test_launch_resumes_only_a_conversation_with_messages(tmp_path: Path) -> None:
    """--resume for a conversation with a prompt, --session-id otherwise; bad ids are refused."""
    profile = _profile(tmp_path, "chat-one-prompt.jsonl", "chat-no-prompt.jsonl")
    known, empty = _id("chat-one-prompt.jsonl"), _id("chat-no-prompt.jsonl")
    resumed = profile.launch(cwd=str(tmp_path), conversation_id=known, initial_prompt="-x")
    assert resumed.argv[1:] == [f"--resume={known}", "--prompt-interactive=-x"]
    assert resumed.resumed
    fresh = profile.launch(cwd=str(tmp_path), conversation_id=empty)
    assert fresh.argv[1:] == [f"--session-id={empty}"] and not fresh.resumed
    with pytest.raises(ValueError, match="not a Gemini conversation id"):
        profile.launch(cwd=str(tmp_path), conversation_id="latest")


def test_headless_events_parse_into_run_events(tmp_path: Path) -> None:
    """Recorded stream-json runs read as INIT (the id), MESSAGE, RESULT with the duration."""
    headless = _profile(tmp_path).headless
    for name, answer in (("headless-new.jsonl", "turn=1"), ("headless-resume.jsonl", "turn=2")):
        lines = _lines(name)
        events = [e for e in map(headless.parse, lines) if e is not None]
        assert [e.kind for e in events] == [
            RunEventKind.INIT,
            RunEventKind.MESSAGE,
            RunEventKind.RESULT,
        ]
        assert events[0].conversation_id == lines[0]["session_id"]
        assert events[1].text == answer
        assert not events[2].is_error
        assert events[2].duration_ms == lines[-1]["stats"]["duration_ms"]


def test_headless_launch_keeps_the_prompt_out_of_the_flags(tmp_path: Path) -> None:
    """The prompt travels as --prompt=…, so one starting with '-' is not read as a flag."""
    profile = _profile(tmp_path)
    run = profile.headless.launch(
        cwd=str(tmp_path), prompt="--help", conversation_id=profile.conversations.new_id()
    )
    assert run.argv[1:3] == ["--prompt=--help", "--output-format=stream-json"]


def test_missing_binary_names_the_install_command(tmp_path: Path) -> None:
    """Without the CLI on PATH the profile says how to install it."""
    reason = _profile(tmp_path).unavailable_reason()
    assert reason is not None and "npm install -g @google/gemini-cli" in reason
