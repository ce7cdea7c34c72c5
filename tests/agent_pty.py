"""A real agent CLI in a real PTY, driven from a test without a server.

``PtyRun`` starts one ``Launch`` (a profile's argv and env) in a
``TerminalSession`` and waits on its emulated screen (pyte), never on raw
output: TUIs redraw only changed cells. Used by the Codex and Gemini tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentpty.agents.base import Launch
from agentpty.terminal.session import TerminalSession
from tests.helpers import timeout

__all__ = ["PASTE_END", "PASTE_START", "PtyRun"]

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


class PtyRun:
    """One agent process in a real PTY; waits read the emulated screen."""

    def __init__(self, launch: Launch, cwd: Path, rows: int = 40, cols: int = 120) -> None:
        self.session = TerminalSession(
            "codex-test", launch.argv, cwd=str(cwd), env=launch.env, rows=rows, cols=cols
        )
        self._changed = asyncio.Event()
        self.exit_code: int | None = None
        #: Enters pressed again because the first one did not submit.
        self.enter_retries = 0

    async def __aenter__(self) -> PtyRun:
        self.session.add_output_listener(lambda _text: self._changed.set())
        self.session.add_exit_callback(self._on_exit)
        self.session.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session.alive:
            await self.session.stop("test over")

    def _on_exit(self, code: int) -> None:
        self.exit_code = code
        self._changed.set()

    def screen(self) -> str:
        return self.session.screen.text()

    async def wait_screen(self, *texts: str, wait: float = 30) -> str:
        """Wait until all of ``texts`` are on the screen at once (or in scrollback); return it."""
        try:
            async with asyncio.timeout(timeout(wait)):
                while not all(text in self.screen() for text in texts):
                    if self.exit_code is not None:
                        raise AssertionError(
                            f"exited {self.exit_code} before {texts!r}; the screen showed:\n"
                            + self.screen()
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{texts!r} not on screen:\n{self.screen()}") from None
        return self.screen()

    async def wait_gone(self, text: str, wait: float = 30) -> None:
        """Wait until ``text`` is no longer on the visible screen."""
        try:
            async with asyncio.timeout(timeout(wait)):
                while text in "\n".join(self.session.screen.lines()):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{text!r} still on screen:\n{self.screen()}") from None

    async def wait_exit(self, wait: float = 30) -> int:
        async with asyncio.timeout(timeout(wait)):
            return await self.session.wait()

    async def settle(self, quiet: float = 0.2, wait: float = 30) -> None:
        """Wait until the screen has not changed for ``quiet`` seconds."""
        async with asyncio.timeout(timeout(wait)):
            while True:
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), quiet)
                except TimeoutError:
                    return

    async def type_prompt(self, text: str, ready: str, *, confirm: bool = True) -> None:
        """Type like a person: at the ready marker, paste, see the echo, pause, Enter.

        Enter must be its own write, and not too soon: right after typed text
        Codex takes it for part of a paste burst, and within 40 ms of a paste
        Gemini CLI inserts a newline instead of submitting. agentpty's own
        delivery (terminal/delivery.py) pauses 0.2 s the same way. Gemini CLI
        often ignores the first Enter after a start even so (docs/gemini.md);
        like a person, the helper then presses Enter again: the ready marker
        hides while the input box holds text and returns once it is submitted.
        ``confirm=False`` presses Enter once and returns (a command the agent
        refuses stays in Codex's input box).
        """
        await self.wait_screen(ready)
        # Start-up work may still redraw (and block the CLI) right after the
        # marker first shows; typed text is safe once the screen is quiet.
        await self.settle(0.5)
        echo = text.split()[0][:20]
        for attempt in range(3):
            # A CLI busy loading (a resumed conversation, a loaded machine)
            # can drop a paste outright; a person would paste it again.
            self.session.send_input(PASTE_START + text + PASTE_END)
            try:
                await self.wait_screen(echo, wait=10 if attempt < 2 else 30)
                break
            except AssertionError:
                if self.exit_code is not None or attempt == 2:
                    raise
        await self.settle()
        if not confirm:
            self.session.send_input("\r")
            return
        for _ in range(3):
            self.session.send_input("\r")
            try:
                await self.wait_screen(ready, wait=5)
                return
            except AssertionError:
                if self.exit_code is not None:
                    raise
                self.enter_retries += 1
        raise AssertionError(f"{text!r} was never submitted:\n{self.screen()}")
