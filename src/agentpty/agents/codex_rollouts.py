"""Codex CLI conversations, read from its own rollout files.

Codex chooses a conversation's id itself (a UUID, version 7 in 0.171.0) and
cannot be told one up front. It records each conversation in
``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<id>.jsonl``, written
at the first submitted prompt (not at start-up). The file's first line is a
``session_meta`` record naming the id, the cwd and the ``source`` (``cli``
for the TUI, ``exec`` for headless runs). See docs/codex.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["CodexConversations", "is_injected_context"]

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: How the context Codex adds as user-role messages begins (environment, AGENTS.md).
_INJECTED_PREFIXES = ("<", "# AGENTS.md")


def is_injected_context(text: str) -> bool:
    """True for a user-role text Codex adds itself rather than one a person typed."""
    return text.lstrip().startswith(_INJECTED_PREFIXES)


class CodexConversations:
    """``ConversationSupport`` for Codex: the CLI chooses ids; agentpty discovers them."""

    chooses_id = False

    def __init__(self, home: Path) -> None:
        #: ``$CODEX_HOME`` (``~/.codex`` unless set).
        self.home = home

    def valid_id(self, value: str) -> bool:
        return _ID.fullmatch(value) is not None

    def new_id(self) -> str:
        """Never valid for Codex (``chooses_id`` is False): callers use ``discover``."""
        raise NotImplementedError("Codex chooses its own conversation ids; use discover()")

    def rollout(self, conversation_id: str) -> Path | None:
        """The conversation's rollout file, or None (also for a malformed id)."""
        if not self.valid_id(conversation_id):
            return None
        for path in self.home.glob(f"sessions/*/*/*/rollout-*-{conversation_id}.jsonl"):
            return path
        return None

    def exists(self, conversation_id: str) -> bool:
        path = self.rollout(conversation_id)
        return path is not None and any(_is_message(entry) for entry in _entries(path))

    def discover(self, cwd: str, since: datetime) -> str | None:
        """The newest interactive conversation begun in ``cwd`` at ``since`` or later.

        Call it after the first prompt was submitted: Codex writes no rollout
        before that. Headless (``exec``) conversations are left out, so a
        headless run in the same folder is never taken for the terminal's.
        """
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        target = os.path.realpath(cwd)
        best: tuple[datetime, str] | None = None
        for path in self._recent_rollouts(since):
            meta = _session_meta(path)
            if meta is None or meta.get("source") == "exec":
                continue
            found = _meta_id(meta)
            started = _parse_time(meta.get("timestamp"))
            if found is None or started is None or started < since:
                continue
            if os.path.realpath(str(meta.get("cwd", ""))) != target:
                continue
            if best is None or started > best[0]:
                best = (started, found)
        return best[1] if best else None

    def _recent_rollouts(self, since: datetime) -> Iterator[Path]:
        # Day folders are named in local time; the file's mtime is a cheap
        # first filter that holds whatever the time zone.
        floor = since.timestamp() - 1
        for path in self.home.glob("sessions/*/*/*/rollout-*.jsonl"):
            try:
                if path.stat().st_mtime >= floor:
                    yield path
            except OSError:
                continue


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry
    except OSError:
        return


def _session_meta(path: Path) -> dict[str, Any] | None:
    for entry in _entries(path):
        payload = entry.get("payload")
        if entry.get("type") == "session_meta" and isinstance(payload, dict):
            return payload
        return None
    return None


def _meta_id(meta: dict[str, Any]) -> str | None:
    value = meta.get("id")
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_message(entry: dict[str, Any]) -> bool:
    """A typed user prompt or an assistant answer (not the context Codex injects)."""
    payload = entry.get("payload")
    if entry.get("type") != "response_item" or not isinstance(payload, dict):
        return False
    if payload.get("type") != "message":
        return False
    role = payload.get("role")
    if role == "assistant":
        return True
    if role != "user":
        return False
    content = payload.get("content")
    parts = content if isinstance(content, list) else []
    return any(
        isinstance(part, dict)
        and part.get("type") == "input_text"
        and not is_injected_context(str(part.get("text", "")))
        for part in parts
    )
