"""Environment and config seeding for running the real Claude Code CLI offline.

Used by tests together with ``fake_messages_api.FakeMessagesAPI``.  The same
``.claude.json`` keys are what an unattended deployment needs so that the
interactive CLI shows no onboarding, trust or API-key dialog.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["claude_env", "seed_claude_config"]


def seed_claude_config(config_dir: Path, cwd: Path, api_key: str) -> None:
    """Create/merge ``<config_dir>/.claude.json`` so the TUI starts without dialogs.

    Sets ``hasCompletedOnboarding``, trusts ``cwd`` (absolute, resolved) under
    ``projects`` and approves the API key (its last 20 characters) under
    ``customApiKeyResponses``.  Safe to call repeatedly, e.g. for new cwds.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / ".claude.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8") or "{}")
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            data = loaded
    data["hasCompletedOnboarding"] = True
    projects = data.get("projects")
    if not isinstance(projects, dict):
        projects = {}
    key = str(cwd.resolve())
    entry = projects.get(key)
    if not isinstance(entry, dict):
        entry = {}
    entry["hasTrustDialogAccepted"] = True
    entry.setdefault("hasCompletedProjectOnboarding", True)
    projects[key] = entry
    data["projects"] = projects
    responses = data.get("customApiKeyResponses")
    if not isinstance(responses, dict):
        responses = {}
    approved = responses.get("approved")
    if not isinstance(approved, list):
        approved = []
    suffix = api_key[-20:]
    if suffix not in approved:
        approved.append(suffix)
    responses["approved"] = approved
    rejected = responses.get("rejected")
    responses["rejected"] = (
        [r for r in rejected if r != suffix] if isinstance(rejected, list) else []
    )
    data["customApiKeyResponses"] = responses
    tmp = path.with_name(f".claude.json.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


def claude_env(config_dir: Path, api_url: str, api_key: str) -> dict[str, str]:
    """Copy of ``os.environ`` pointing the CLI at ``api_url`` with an isolated config dir."""
    env = dict(os.environ)
    for name in ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"):
        env.pop(name, None)
    env.update(
        {
            "ANTHROPIC_BASE_URL": api_url,
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CONFIG_DIR": str(config_dir),
            "TERM": env.get("TERM") or "xterm-256color",
        }
    )
    return env
