"""A stand-in agent profile for an agent that chooses its own conversation ids.

Codex CLI cannot be told an id up front: agentpty starts it without one and
learns the id afterwards. ``OwnIdProfile`` drives ``tests/fake_agent.py`` in
that mode (``FAKE_AGENT_OWN_ID=1``) so the ``chooses_id=False`` path of the
services is tested fast, without any real CLI. With ``hooks=False`` the id
can only be learnt from the agent's files (``discover``) or a headless
``init`` event.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agentpty.agents.base import Launch
from agentpty.agents.capabilities import DeliveryHints, RunEvent, ScreenMarkers
from agentpty.agents.claude import ClaudeHooks, parse_stream_json

__all__ = ["FAKE_AGENT", "OwnIdConversations", "OwnIdProfile"]

FAKE_AGENT = str(Path(__file__).with_name("fake_agent.py"))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class OwnIdConversations:
    """Conversation files ``<config>/own/<id>.jsonl``, first line ``{"type": "meta", ...}``."""

    chooses_id = False

    def __init__(self, config_dir: Path) -> None:
        self.folder = config_dir / "own"

    def valid_id(self, value: str) -> bool:
        return bool(UUID.fullmatch(value))

    def new_id(self) -> str:
        raise RuntimeError("this agent chooses its own conversation ids")

    def path(self, conversation_id: str) -> Path:
        return self.folder / f"{conversation_id}.jsonl"

    def exists(self, conversation_id: str) -> bool:
        if not self.valid_id(conversation_id):
            return False
        try:
            lines = self.path(conversation_id).read_text().splitlines()
        except OSError:
            return False
        return any('"type": "user"' in line for line in lines)

    def discover(self, cwd: str, since: datetime) -> str | None:
        """The newest conversation started in ``cwd`` since ``since`` (its file's first line)."""
        found: list[tuple[float, str]] = []
        for path in self.folder.glob("*.jsonl"):
            try:
                modified = path.stat().st_mtime
                with path.open() as handle:
                    meta = json.loads(handle.readline())
            except (OSError, ValueError):
                continue
            if meta.get("cwd") == cwd and modified >= since.timestamp():
                found.append((modified, str(meta.get("id"))))
        return max(found)[1] if found else None


class OwnIdHeadless:
    def __init__(self, profile: OwnIdProfile) -> None:
        self._profile = profile

    def launch(self, *, cwd: str, prompt: str, conversation_id: str | None) -> Launch:
        argv = [*self._profile.argv(conversation_id), "-p", "--", prompt]
        resumed = any(arg.startswith("--resume=") for arg in argv)
        return Launch(argv=argv, env=dict(self._profile.env), resumed=resumed)

    def parse(self, event: Mapping[str, Any]) -> RunEvent | None:
        # The fake prints Claude Code's stream-json in this mode too.
        return parse_stream_json(event)


class OwnIdProfile:
    """fake_agent.py as an agent that chooses its own ids; hooks optional."""

    name = "ownid"
    markers = ScreenMarkers(
        ready="❯",
        busy=("esc to interrupt",),
        refusal=("Unknown command",),
        expired=("no saved conversation",),
    )
    bracketed_paste = True
    takes_initial_prompt = True
    delivery = DeliveryHints()

    def __init__(self, env: Mapping[str, str], config_dir: Path, *, hooks: bool) -> None:
        self.env = {**env, "FAKE_AGENT_OWN_ID": "1", "CLAUDE_CONFIG_DIR": str(config_dir)}
        self.conversations = OwnIdConversations(config_dir)
        self.hooks = ClaudeHooks() if hooks else None
        self.headless = OwnIdHeadless(self)

    def unavailable_reason(self) -> str | None:
        return None

    def argv(self, conversation_id: str | None) -> list[str]:
        argv = [sys.executable, FAKE_AGENT]
        if conversation_id is not None and self.conversations.exists(conversation_id):
            argv.append(f"--resume={conversation_id}")
        if self.hooks is not None and self.hooks.settings_path is not None:
            argv.append(f"--settings={self.hooks.settings_path}")
        return argv

    def launch(
        self, *, cwd: str, conversation_id: str | None, initial_prompt: str | None = None
    ) -> Launch:
        argv = self.argv(conversation_id)
        resumed = any(arg.startswith("--resume=") for arg in argv)
        if initial_prompt:
            argv += ["--", initial_prompt]
        return Launch(argv=argv, env=dict(self.env), resumed=resumed)
