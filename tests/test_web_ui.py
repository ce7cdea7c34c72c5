"""The web UI in a real browser (Debian's Chromium through Playwright) on a real server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    WebSocket,
    async_playwright,
    expect,
)

from tests.claude_world import ClaudeWorld, claude_world
from tests.helpers import RunningServer, empty_home, eventually, make_settings, serve, timeout

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = timeout(15) * 1000

pytestmark = pytest.mark.browser
__all__ = ["claude_world"]  # a fixture, imported for its tests

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: 'make chromium' (part of 'make test') installs Debian's Chromium",
        allow_module_level=True,
    )

expect.set_options(timeout=WAIT_MS)

#: Every line of the xterm.js buffer (scrollback and screen), right-trimmed.
TERMINAL_TEXT = """() => {
    const term = window.agentptyTerm;
    if (!term) return "";
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join("\\n");
}"""


@pytest.fixture(autouse=True)
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shells start from an empty home: a slow or locked ``~/.bashrc`` cannot stall the prompt."""
    monkeypatch.setenv("HOME", empty_home(tmp_path))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A tab of ``context``; fails the test if the page's script throws."""
    page = await context.new_page()
    errors: list[Error] = []

    def on_error(error: Error) -> None:
        errors.append(error)

    page.on("pageerror", on_error)
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"


async def sign_in(page: Page, server: RunningServer) -> None:
    await page.goto(f"{server.base_url}/?token={server.token}")
    await expect(page.locator("#projects-view")).to_be_visible()


async def open_project(page: Page, server: RunningServer, project_id: str) -> None:
    await page.goto(f"{server.base_url}/#/projects/{project_id}")
    await expect(page.locator("#indicator")).to_have_text("live")


async def terminal_text(page: Page) -> str:
    return str(await page.evaluate(TERMINAL_TEXT))


async def wait_terminal(page: Page, pattern: str) -> None:
    """Wait until a line of the terminal matches the JavaScript regex ``pattern``."""
    await page.wait_for_function(
        f"(pattern) => new RegExp(pattern, 'm').test(({TERMINAL_TEXT})())",
        arg=pattern,
        timeout=WAIT_MS,
    )


async def wait_terminal_settled(page: Page, quiet_ms: float = 500) -> None:
    """Wait until the terminal's text has not changed for ``quiet_ms`` (a person's pause)."""
    await page.wait_for_function(
        f"""(quiet) => {{
            const text = ({TERMINAL_TEXT})();
            const now = performance.now();
            const seen = window.__settle;
            if (!seen || seen.text !== text) {{
                window.__settle = {{text, since: now}};
                return false;
            }}
            return now - seen.since >= quiet;
        }}""",
        arg=quiet_ms,
        polling=50,
        timeout=WAIT_MS,
    )


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


async def test_sign_in_and_create_project(server: RunningServer, page: Page) -> None:
    """The token URL signs in (cookie, clean address) and the form creates a listed project."""
    await page.goto(f"{server.base_url}/")
    await expect(page.locator("#signin-view")).to_contain_text("agentpty serve")
    await sign_in(page, server)
    assert page.url == f"{server.base_url}/"
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["agentpty_token"]["value"] == server.token
    assert cookies["agentpty_token"]["httpOnly"]
    await expect(page.locator("#projects-empty")).to_be_visible()

    await page.locator("#create-agent").select_option("shell")
    await page.locator("#create-name").fill("web-demo")
    await page.locator("#create-name").press("Enter")

    card = page.locator(".project-card")
    await expect(card).to_have_count(1)
    await expect(card.locator(".pc-name")).to_have_text("web-demo")
    await expect(card.locator(".badge.agent")).to_have_text("shell")
    await expect(card.locator(".badge.state")).to_have_text("none")
    await expect(page.locator("#create-name")).to_have_value("")
    async with server.http() as client:
        listed = (await client.get("/api/output-projects")).json()["output_projects"]
    assert [(p["name"], p["agent"]) for p in listed] == [("web-demo", "shell")]
    await screenshot(page, "projects-page")


async def test_sign_in_panel_takes_a_pasted_token(server: RunningServer, page: Page) -> None:
    """Without the cookie the sign-in panel shows; it refuses a wrong token, takes the right one."""
    await page.goto(f"{server.base_url}/#/")
    token = page.locator("#signin-token")
    await expect(token).to_be_focused()
    await token.fill("not-the-token")
    await token.press("Enter")
    await expect(page.locator("#signin-error")).to_contain_text("not the one")

    await token.fill(server.token)
    await token.press("Enter")
    await expect(page.locator("#projects-view")).to_be_visible()
    assert page.url == f"{server.base_url}/#/"


async def test_missing_claude_shows_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Browser
) -> None:
    """Creating a claude project without Claude Code shows the server's install hint."""
    monkeypatch.setenv("AGENTPTY_CLAUDE_BIN", str(tmp_path / "no-such-claude"))
    async with serve(make_settings(tmp_path / "data")) as server:
        context = await browser.new_context(viewport=LAPTOP)
        try:
            page = await context.new_page()
            await sign_in(page, server)
            await page.locator("#create-agent").select_option("claude")
            await page.locator("#create-name").fill("needs-claude")
            await page.locator("#create-name").press("Enter")
            callout = page.locator("#agent-unavailable")
            await expect(callout).to_be_visible()
            await expect(callout).to_contain_text("no-such-claude")
            await expect(page.locator("#projects-empty")).to_be_visible()
            await screenshot(page, "projects-page-agent-unavailable")
        finally:
            await context.close()


async def test_terminal_echo(server: RunningServer, page: Page) -> None:
    """The project page shows the shell's prompt and runs what is typed into the terminal."""
    await server.create_project("echo-demo")
    await sign_in(page, server)
    await page.get_by_role("link", name="echo-demo").click()
    await expect(page.locator("#indicator")).to_have_text("live")
    await expect(page.locator("#project-name")).to_have_text("echo-demo")
    await wait_terminal(page, r"[$#%>] ?$")

    await page.keyboard.type("echo hello")
    await page.keyboard.press("Enter")
    await wait_terminal(page, r"^hello$")
    await expect(page.locator("#sd-state")).to_have_text("running")
    await screenshot(page, "project-page")

    await page.set_viewport_size(PHONE)
    # The terminal refits to the narrow pane (and tells the server).
    await page.wait_for_function("() => window.agentptyTerm.cols < 60")
    await screenshot(page, "project-page-phone")
    await page.goto(f"{server.base_url}/#/")
    await expect(page.locator(".project-card")).to_have_count(1)
    await screenshot(page, "projects-page-phone")


async def test_terminal_output_comes_as_binary_frames(server: RunningServer, page: Page) -> None:
    """The page asks for the binary dialect: output arrives as raw UTF-8 frames and draws right."""
    await server.create_project("binary-demo")
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    await sign_in(page, server)
    await page.get_by_role("link", name="binary-demo").click()
    await expect(page.locator("#indicator")).to_have_text("live")
    await wait_terminal(page, r"[$#%>] ?$")
    assert sockets, "the page opened no WebSocket"
    binary: list[bytes] = []

    def received(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            binary.append(payload)

    sockets[-1].on("framereceived", received)
    # printf writes the UTF-8 bytes of "é" whatever the shell's locale.
    await page.keyboard.type("printf '\\303\\251t\\303\\251-%d\\n' $((40+2))")
    await page.keyboard.press("Enter")
    await wait_terminal(page, r"^été-42$")
    assert any("été-42".encode() in frame for frame in binary)


async def test_reload_reattaches_screen(server: RunningServer, page: Page) -> None:
    """After a reload, or leaving for the list and coming back, the same screen shows again."""
    project = await server.create_project("reattach")
    await sign_in(page, server)
    await open_project(page, server, project)
    await page.keyboard.type("echo hello")
    await page.keyboard.press("Enter")
    await wait_terminal(page, r"^hello$")

    await page.reload()
    await expect(page.locator("#indicator")).to_have_text("live")
    await wait_terminal(page, r"echo hello$")
    await wait_terminal(page, r"^hello$")

    await page.get_by_role("link", name="← Projects").click()
    await expect(page.locator(".project-card .badge.state")).to_have_text("running")
    assert await page.evaluate("window.agentptyTerm") is None
    await page.get_by_role("link", name="reattach", exact=True).click()
    await expect(page.locator("#indicator")).to_have_text("live")
    await wait_terminal(page, r"^hello$")


async def test_second_tab_sees_typing(
    server: RunningServer, context: BrowserContext, page: Page
) -> None:
    """A second tab on the same project sees what is typed in the first one."""
    project = await server.create_project()
    await sign_in(page, server)
    await open_project(page, server, project)
    other = await context.new_page()
    await open_project(other, server, project)

    await page.bring_to_front()
    await page.locator("#terminal").click()
    await page.keyboard.type("echo tab-$((6*7))")
    await page.keyboard.press("Enter")
    await wait_terminal(page, r"^tab-42$")
    await wait_terminal(other, r"^tab-42$")
    await other.close()


async def test_milestone_start_types_command(server: RunningServer, page: Page) -> None:
    """A milestone created and started in the UI goes in progress; its command reaches the shell."""
    project = await server.create_project()
    await sign_in(page, server)
    await open_project(page, server, project)

    await page.locator("#milestone-title").fill("Port the invoice module")
    await page.locator("#milestone-context").fill("# Goal\n\nMove `invoice.cbl` to Python.")
    async with page.expect_response(
        lambda r: r.url.endswith("/api/milestones") and r.request.method == "POST"
    ) as created:
        await page.locator("#milestone-title").press("Enter")
    if (await created.value).status in (404, 405):
        pytest.skip("milestone backend not present")

    row = page.locator(".milestone")
    await expect(row).to_have_count(1)
    await expect(row.locator(".ms-title")).to_have_text("Port the invoice module")
    await expect(row.locator(".badge.status")).to_have_text("pending")
    await expect(row.get_by_role("button", name=re.compile("^Complete"))).to_be_disabled()
    milestone_id = await row.get_attribute("data-milestone-id")
    assert milestone_id

    await row.get_by_role("button", name=re.compile("^Start")).click()
    await expect(row.locator(".badge.status")).to_have_text("in progress")
    await expect(row.get_by_role("button", name=re.compile("^Start"))).to_be_disabled()
    await expect(row.get_by_role("button", name=re.compile("^Complete"))).to_be_enabled()
    await wait_terminal(page, re.escape(f".milestones/{milestone_id}"))
    await screenshot(page, "project-page-milestone")


async def test_stop_and_start_session(server: RunningServer, page: Page) -> None:
    """Stopping the session shows its exit code; starting it again goes live."""
    project = await server.create_project()
    await sign_in(page, server)
    await open_project(page, server, project)
    indicator = page.locator("#indicator")

    await page.get_by_role("button", name="Stop session").click()
    await expect(indicator).to_have_text(re.compile(r"^exited \(code -?\d+\)$"))
    await expect(page.locator("#sd-state")).to_have_text("exited")

    await page.get_by_role("button", name="Start / resume").click()
    await expect(indicator).to_have_text("live")
    await expect(page.locator("#sd-state")).to_have_text("running")
    await page.keyboard.type("echo again")
    await page.keyboard.press("Enter")
    await wait_terminal(page, r"^again$")


@pytest.mark.claude
async def test_claude_stop_and_start_shows_resumed(claude_world: ClaudeWorld, page: Page) -> None:
    """A Claude project (real CLI, fake model): stop, start again, the indicator says resumed."""
    async with claude_world.server() as server:
        project = await claude_world.create_project(server)
        await sign_in(page, server)
        await open_project(page, server, project)
        await wait_terminal(page, "❯")
        await wait_terminal_settled(page)  # start-up hooks still redraw right after the prompt
        await page.keyboard.type("hello from the browser")
        await page.keyboard.press("Enter")
        await wait_terminal(page, "turn=1")
        stored = (await server.services.store.get_project(project)).agent_session_id
        assert stored is not None

        async def persisted() -> bool:  # the CLI writes its transcript lazily
            files = claude_world.transcripts(stored)
            return any('"type":"assistant"' in f.read_text() for f in files)

        await eventually(persisted)
        indicator = page.locator("#indicator")
        await page.get_by_role("button", name="Stop session").click()
        await expect(indicator).to_have_text(re.compile(r"^exited \(code -?\d+\)$"))
        await page.get_by_role("button", name="Start / resume").click()
        await expect(indicator).to_have_text(f"resumed conversation {stored[:8]}")
        await wait_terminal(page, re.escape(f"[resumed conversation {stored[:8]}]"))
        await wait_terminal(page, "turn=1")  # the CLI redraws the resumed conversation
        await screenshot(page, "project-page-claude-resumed")
