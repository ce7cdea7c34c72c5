"""Server-side model of a terminal screen, for late joiners.

pyte is a correct but slow VT emulator (about 1 MB/s here), so it stays off
the output hot path: output is appended to a pending buffer and fed to the
emulator when the session goes quiet or a snapshot is asked for. Under a
sustained flood the pending buffer keeps only its most recent part (starting
at a line boundary): the screen then shows the latest lines, and full-screen
programs repaint on the SIGWINCH sent when a client attaches.

Output arrives as UTF-8 bytes and is decoded here, incrementally, when the
emulator catches up: decoding is off the hot path too. A line that scrolls
off the top never changes again, so it is rendered to ANSI once, when it
leaves the screen, and kept as that string: a snapshot only renders the
visible rows, and scrollback costs a short string per line instead of
pyte's per-cell objects.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from typing import Any

import pyte
from pyte.screens import Margins

__all__ = ["ScreenModel"]

#: The only escapes ``render_line`` writes: SGR.
_SGR = re.compile("\x1b\\[[0-9;]*m")

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


def render_line(line: Any, columns: int) -> str:
    """One pyte line as ANSI text; trailing default blanks are dropped (a narrower client
    does not wrap)."""
    last = -1
    for x in range(columns):
        char = line[x]
        if char.data != " " or char.bg != "default" or char.reverse:
            last = x
    out: list[str] = []
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
    return "".join(out)


class _Screen(pyte.Screen):
    """A pyte screen that keeps lines scrolled off the top, rendered, cheaply.

    (pyte's HistoryScreen does more, paging included, at three times the cost.)
    """

    def __init__(self, columns: int, lines: int, scrollback: int) -> None:
        #: ANSI text of the lines scrolled off the top, oldest first.
        self.scrollback: deque[str] = deque(maxlen=scrollback)
        super().__init__(columns, lines)

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and self.scrollback.maxlen:
            self.scrollback.append(render_line(self.buffer[top], self.columns))
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
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._max_pending = max_pending
        self._keep = keep_on_overflow

    @property
    def has_pending(self) -> bool:
        return self._pending_size > 0

    def append(self, data: bytes) -> None:
        """Record output (UTF-8 bytes); cheap, neither decodes nor runs the emulator."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > self._max_pending:
            tail = b"".join(self._pending)[-self._keep :]
            newline = tail.find(b"\n")
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
        data = b"".join(self._pending)
        if limit is not None and len(data) > limit:
            data, rest = data[:limit], data[limit:]
            self._pending = [rest]
            self._pending_size = len(rest)
        else:
            self._pending.clear()
            self._pending_size = 0
        # The decoder keeps a character cut by a slice (or a read) until its end arrives.
        self._stream.feed(self._decoder.decode(data))
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
        history = [_SGR.sub("", line).rstrip() for line in self._screen.scrollback]
        return "\n".join([*history, *self.lines()]).rstrip("\n")

    def snapshot(self) -> str:
        """ANSI text that redraws scrollback, screen and cursor on a blank terminal."""
        self.sync()
        screen = self._screen
        rows = [
            *screen.scrollback,
            *(render_line(screen.buffer[y], screen.columns) for y in range(screen.lines)),
        ]
        out = ["\x1b[0m\x1b[H\x1b[2J", "\r\n".join(rows)]
        out.append(f"\x1b[0m\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H")
        if screen.cursor.hidden:
            out.append("\x1b[?25l")
        return "".join(out)
