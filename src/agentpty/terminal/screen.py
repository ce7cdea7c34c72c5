"""Server-side model of a terminal screen, for late joiners.

pyte is a correct but slow VT emulator (about 1 MB/s here), so it stays off
the output hot path: output is appended to a pending buffer and fed to the
emulator when the session goes quiet or a snapshot is asked for. Under a
sustained flood the pending buffer keeps only its most recent part (starting
at a line boundary): the screen then shows the latest lines, and full-screen
programs repaint on the SIGWINCH sent when a client attaches.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pyte
from pyte.screens import Margins

__all__ = ["ScreenModel"]

_COLORS = {
    name: index
    for index, name in enumerate(
        ("black", "red", "green", "brown", "blue", "magenta", "cyan", "white")
    )
}
_BRIGHT = {
    "bright" + name: index
    for index, name in enumerate(
        ("black", "red", "green", "brown", "blue", "magenta", "cyan", "white")
    )
}


def _color(value: str, base: int) -> list[str]:
    """SGR parameters for a pyte colour (name or hex) as foreground (30) or background (40)."""
    if value == "default":
        return []
    if value in _COLORS:
        return [str(base + _COLORS[value])]
    if value in _BRIGHT:
        return [str(base + 60 + _BRIGHT[value])]
    if len(value) == 6:
        try:
            r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return []
        return [str(base + 8), "2", str(r), str(g), str(b)]
    return []


def _sgr(char: Any) -> str:
    params = ["0"]
    if char.bold:
        params.append("1")
    if char.italics:
        params.append("3")
    if char.underscore:
        params.append("4")
    if char.blink:
        params.append("5")
    if char.reverse:
        params.append("7")
    if char.strikethrough:
        params.append("9")
    params += _color(char.fg, 30)
    params += _color(char.bg, 40)
    return "\x1b[" + ";".join(params) + "m"


class _Screen(pyte.Screen):
    """A pyte screen that keeps lines scrolled off the top, cheaply.

    (pyte's HistoryScreen does more, paging included, at three times the cost.)
    """

    def __init__(self, columns: int, lines: int, scrollback: int) -> None:
        self.scrollback: deque[Any] = deque(maxlen=scrollback)
        super().__init__(columns, lines)

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        # xterm's "CSI > 4 ; ? m" (query modifyOtherKeys; Gemini CLI sends it
        # at start-up) is not SGR. pyte skips the ">", takes the "?" for a
        # private marker and calls this with private=True, which the base
        # method does not accept: the emulator raised TypeError.
        if not private:
            super().select_graphic_rendition(*attrs)

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0:
            self.scrollback.append(self.buffer[top])
        super().index()


class ScreenModel:
    """The current screen and recent scrollback of one terminal."""

    def __init__(
        self,
        rows: int,
        cols: int,
        *,
        scrollback: int = 1000,
        max_pending: int = 128 * 1024,
        keep_on_overflow: int = 32 * 1024,
    ) -> None:
        self._screen = _Screen(cols, rows, scrollback)
        self._stream = pyte.Stream(self._screen)
        self._pending: list[str] = []
        self._pending_size = 0
        self._max_pending = max_pending
        self._keep = keep_on_overflow

    @property
    def has_pending(self) -> bool:
        return self._pending_size > 0

    def append(self, text: str) -> None:
        """Record output; cheap, does not run the emulator."""
        self._pending.append(text)
        self._pending_size += len(text)
        if self._pending_size > self._max_pending:
            tail = "".join(self._pending)[-self._keep :]
            newline = tail.find("\n")
            if 0 <= newline < len(tail) - 1:
                tail = tail[newline + 1 :]
            self._pending = [tail]
            self._pending_size = len(tail)

    def sync(self, limit: int | None = None) -> bool:
        """Run the emulator over what is pending (at most ``limit`` characters).

        pyte's parser keeps its state between feeds, so a slice may end in the
        middle of an escape sequence. Returns True while more is pending.
        """
        if not self._pending:
            return False
        text = "".join(self._pending)
        if limit is not None and len(text) > limit:
            text, rest = text[:limit], text[limit:]
            self._pending = [rest]
            self._pending_size = len(rest)
        else:
            self._pending.clear()
            self._pending_size = 0
        self._stream.feed(text)
        return bool(self._pending)

    def resize(self, rows: int, cols: int) -> None:
        self.sync()
        self._screen.resize(rows, cols)

    def lines(self) -> list[str]:
        """The visible screen as plain text, one string per row, right-trimmed."""
        self.sync()
        return [line.rstrip() for line in self._screen.display]

    def text(self) -> str:
        """Scrollback and screen as plain text (for tests, logs and matching)."""
        self.sync()
        history = [
            "".join(line[x].data for x in range(self._screen.columns)).rstrip()
            for line in self._screen.scrollback
        ]
        return "\n".join([*history, *self.lines()]).rstrip("\n")

    def snapshot(self) -> str:
        """ANSI text that redraws scrollback, screen and cursor on a blank terminal."""
        self.sync()
        screen = self._screen
        out = ["\x1b[0m\x1b[H\x1b[2J"]
        rows = [*screen.scrollback, *(screen.buffer[y] for y in range(screen.lines))]
        for index, line in enumerate(rows):
            if index:
                out.append("\r\n")
            self._render_line(line, screen.columns, out)
        out.append(f"\x1b[0m\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H")
        if screen.cursor.hidden:
            out.append("\x1b[?25l")
        return "".join(out)

    @staticmethod
    def _render_line(line: Any, columns: int, out: list[str]) -> None:
        # Trailing default blanks are dropped so a narrower client does not wrap.
        last = -1
        for x in range(columns):
            char = line[x]
            if char.data != " " or char.bg != "default" or char.reverse:
                last = x
        style = ""
        for x in range(last + 1):
            char = line[x]
            if not char.data:  # second half of a wide character
                continue
            sgr = _sgr(char)
            if sgr != style:
                out.append(sgr)
                style = sgr
            out.append(char.data)
        if style != "\x1b[0m" and style:
            out.append("\x1b[0m")
