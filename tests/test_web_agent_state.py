"""The agent state in the web UI (real Chromium, real server): badges, title count, notifications.

States are driven through the real hook endpoint with payloads recorded from
the real Claude Code CLI (tests/data/claude-hooks-2.1.197/tool.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from agentpty.agents.capabilities import ScreenMarkers
from agentpty.agents.claude_hooks import ClaudeHooks
from agentpty.agents.shell import ShellProfile
from agentpty.config import Settings
from agentpty.service.container import build_profiles
from tests.helpers import RunningServer, clean_shell, make_settings, serve
from tests.test_web_ui import browser, clean_home, context, open_project, page, sign_in

pytestmark = pytest.mark.browser
__all__ = ["browser", "clean_home", "context", "page"]  # fixtures, imported for these tests

RECORDED = Path(__file__).parent / "data" / "claude-hooks-2.1.197" / "tool.jsonl"

#: Stand-in for a hidden tab: headless Chromium has no window a user could
#: switch away from, so ``document.hidden`` is made settable (``__hide``), and
#: notifications the page raises are recorded in ``__notes`` (then shown).
HIDDEN_TAB_STANDIN = """
window.__hidden = false;
window.__notes = [];
Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden });
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) { super(title, options); window.__notes.push(title); }
};
"""


def hooked_shell() -> ShellProfile:
    """Stand-in for Claude Code: bash (no model needed) declaring Claude Code's hooks.

    The test posts the recorded hook payloads itself; its prompt ``$`` is the
    ready marker, so the screen fallback (agents with hooks) can say idle too.
    """
    profile = clean_shell()
    profile.hooks = ClaudeHooks()
    profile.markers = ScreenMarkers(ready="$")
    return profile


def profiles(settings: Settings) -> dict[str, Any]:
    return {**build_profiles(settings), "shell": hooked_shell()}


def payload(event: str) -> dict[str, Any]:
    for line in RECORDED.read_text().splitlines():
        data = json.loads(line)
        if data["hook_event_name"] == event:
            return dict(data)
    raise AssertionError(f"no {event} in {RECORDED}")


async def report(server: RunningServer, project: str, event: str) -> None:
    """POST one recorded hook payload to the project's hook endpoint, as the agent's hook does."""
    key = server.services.hooks.key(project)
    async with server.http(auth=False) as http:
        response = await http.post(
            f"/api/hooks/{project}", params={"key": key}, json=payload(event)
        )
        assert response.status_code == 200, response.text


async def test_badge_title_and_notifications_follow_the_agent_state(
    tmp_path: Path, context: BrowserContext, page: Page
) -> None:
    """needs_input shows a badge with shape and words, counts in the title, notifies when hidden."""
    settings = make_settings(tmp_path / "data")
    async with serve(settings, profiles(settings)) as server:
        alpha = await server.create_project("alpha")
        await server.create_project("beta")
        await context.grant_permissions(["notifications"], origin=server.base_url)
        await page.add_init_script(HIDDEN_TAB_STANDIN)
        await sign_in(page, server)
        row = page.locator(f'li[data-project-id="{alpha}"]')
        badge = row.locator(".badge.agent-state")
        await expect(badge).to_have_attribute("data-agent-state", "unknown")
        await expect(page.locator("#btn-notify")).to_have_attribute("aria-pressed", "true")

        await report(server, alpha, "UserPromptSubmit")
        await expect(badge).to_have_text("▶working")
        await report(server, alpha, "PermissionRequest")
        await expect(badge).to_have_text("▲needs input")
        await expect(badge).to_have_attribute("aria-label", "agent needs input: Bash touch x")
        await expect(page).to_have_title("(1 needs input) agentpty")

        await page.evaluate("window.__hidden = true")
        await report(server, alpha, "PostToolUse")
        await expect(page).to_have_title("agentpty")
        await report(server, alpha, "Stop")
        await expect(badge).to_have_text("●idle")
        await page.wait_for_function("window.__notes.length >= 1")
        assert await page.evaluate("window.__notes") == ["alpha finished its turn"]
        await report(server, alpha, "PermissionRequest")
        await page.wait_for_function("window.__notes.length >= 2")
        assert (await page.evaluate("window.__notes"))[1] == "alpha needs input"

        await page.evaluate("window.__hidden = false")
        # The project page starts the shell: its state now comes from its screen (quiet: idle).
        await open_project(page, server, alpha)
        project_badge = page.locator("#project-agent-state")
        await expect(project_badge).to_have_text("●idle")
        await expect(page).to_have_title("alpha · agentpty")
        await report(server, alpha, "PermissionRequest")
        await expect(project_badge).to_have_text("▲needs input")
        await expect(page).to_have_title("(1 needs input) alpha · agentpty")
        await report(server, alpha, "PostToolUse")
        await expect(project_badge).to_have_text("▶working")
        await expect(page).to_have_title("alpha · agentpty")
        assert len(await page.evaluate("window.__notes")) == 2  # visible tab: no notification
