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

A screen that has been quiet a while can be put to sleep (``hibernate``):
its visible rows are kept as ANSI text as well and pyte's per-cell buffer
and parser are dropped, which is most of an idle session's memory. Snapshots
and text are served from the rows; the next output wakes the emulator, which
redraws the rows and gets its cursor, modes and margins back. A model starts
asleep with blank rows, and a lazy ``sync`` (the session's, when output goes
quiet) leaves a sleeping model alone while less than ``wake_size`` bytes are
pending: an idle shell's prompt never builds an emulator until a late
joiner, a resize or a reader of the text needs it.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from functools import lru_cache
from typing import Any

import pyte
from pyte import modes
from pyte.screens import Char, Cursor, Margins, wcwidth

__all__ = ["ScreenModel", "render_line"]

#: A cell nobody wrote to (or erased with default attributes).
_BLANK = Char(" ")
_DEFAULT_STYLE = tuple(_BLANK)[1:]

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


@lru_cache(maxsize=4096)
def _sgr(style: tuple[Any, ...]) -> str:
    """The SGR sequence of a cell's style (a pyte ``Char`` without its ``data``)."""
    fg, bg, bold, italics, underscore, strikethrough, reverse, blink = style
    params = ["0"]
    if bold:
        params.append("1")
    if italics:
        params.append("3")
    if underscore:
        params.append("4")
    if blink:
        params.append("5")
    if reverse:
        params.append("7")
    if strikethrough:
        params.append("9")
    params += _color(fg, 30)
    params += _color(bg, 40)
    return "\x1b[" + ";".join(params) + "m"


def render_line(line: Any, columns: int) -> str:
    """One pyte line as ANSI text; trailing default blanks are dropped (a narrower client
    does not wrap).

    Every other cell is kept, styled blanks included, and a wide character
    whose other half was overwritten shows as a blank (as on a terminal), so
    drawing the text on a blank line gives cells that render to the same
    text again (hibernation relies on it).
    """
    if not line:
        return ""
    # A pyte line is a dict of the cells written; the others are default blanks.
    end = min(max(line) + 1, columns)
    cells: list[tuple[str, tuple[Any, ...]]] = []
    x = 0
    while x < end:
        char = line[x]
        data = char.data
        x += 1
        if not data:
            data = " "  # the second half of a wide character that was overwritten
        elif data[0] > "\x7f" and wcwidth(data[0]) == 2:
            if x < columns and not line[x].data:
                x += 1  # the character covers its second half
            else:
                data = " "  # its second half was overwritten
        cells.append((data, char[1:]))
    while cells and cells[-1][0] == " " and cells[-1][1] == _DEFAULT_STYLE:
        cells.pop()
    out: list[str] = []
    style: tuple[Any, ...] | None = None
    for data, cell_style in cells:
        if cell_style != style:
            out.append(_sgr(cell_style))
            style = cell_style
        out.append(data)
    if style is not None and style != _DEFAULT_STYLE:
        out.append("\x1b[0m")
    return "".join(out)


class _NoDirty(set[int]):
    """pyte's set of changed rows, for renderers that repaint what changed: nobody reads it
    here, and a full one costs 2 KiB per screen. This one stays empty."""

    def add(self, element: int) -> None:
        pass

    def update(self, *others: Any) -> None:
        pass


_NO_DIRTY = _NoDirty()


class _Screen(pyte.Screen):
    """A pyte screen that keeps lines scrolled off the top, rendered, cheaply.

    (pyte's HistoryScreen does more, paging included, at three times the cost.)
    """

    def __init__(self, columns: int, lines: int, scrollback: int) -> None:
        #: ANSI text of the lines scrolled off the top, oldest first; made on the first
        #: one (an empty deque costs ~0.7 KiB, and idle shells seldom scroll).
        self.scrollback: deque[str] | tuple[()] = ()
        self.scrollback_size = scrollback
        super().__init__(columns, lines)
        self.dirty = _NO_DIRTY

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        # xterm's "CSI > 4 ; ? m" (query modifyOtherKeys; Gemini CLI sends it
        # at start-up) is not SGR. pyte skips the ">", takes the "?" for a
        # private marker and calls this with private=True, which the base
        # method does not accept: the emulator raised TypeError.
        if not private:
            super().select_graphic_rendition(*attrs)

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and self.scrollback_size:
            if not isinstance(self.scrollback, deque):
                self.scrollback = deque(maxlen=self.scrollback_size)
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
        wake_size: int = 4 * 1024,
    ) -> None:
        self._screen = _Screen(cols, rows, scrollback)
        self._stream: pyte.Stream | None = None
        #: While hibernating: the visible rows as ANSI text (and no stream).
        self._rows: list[str] | None = [""] * rows
        self._wake_size = wake_size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._max_pending = max_pending
        self._keep = keep_on_overflow

    @property
    def has_pending(self) -> bool:
        return self._pending_size > 0

    @property
    def hibernating(self) -> bool:
        return self._rows is not None

    def hibernate(self) -> bool:
        """Drop the emulator's per-cell state, keeping the visible rows as text.

        Only when nothing is pending and the parser and the decoder are
        between sequences (else it stays awake); returns whether it sleeps.
        """
        stream = self._stream
        if (
            stream is None
            or self._pending
            or stream._taking_plain_text is not True
            or self._decoder.getstate()[0]
        ):
            return self._rows is not None
        screen = self._screen
        self._rows = [render_line(screen.buffer[y], screen.columns) for y in range(screen.lines)]
        screen.buffer.clear()
        # pyte's parser is a generator that refers to its stream: a cycle only
        # the garbage collector frees, so each session that slept kept its
        # emulator (~2.5 KiB) until a full collection. Closed, it goes now.
        if stream._parser is not None:
            stream._parser.close()
        self._stream = None
        return True

    def _wake(self) -> pyte.Stream:
        """The stream, after redrawing the rows on the emulator if it was hibernating."""
        if self._stream is not None:
            return self._stream
        screen = self._screen
        kept = screen.cursor, screen.mode, screen.margins
        # Redraw with plain modes (no insert mode, no origin mode, no margins).
        screen.mode = {modes.DECAWM, modes.DECTCEM}
        screen.margins = None
        stream = pyte.Stream(screen)
        for y, row in enumerate(self._rows or ()):
            if row:
                screen.cursor = Cursor(0, y)
                stream.feed(row)
        screen.cursor, screen.mode, screen.margins = kept
        self._rows = None
        self._stream = stream
        return stream

    def append(self, data: bytes) -> None:
        """Record output (UTF-8 bytes); cheap, neither decodes nor runs the emulator."""
        if not data:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > self._max_pending:
            tail = b"".join(self._pending)[-self._keep :]
            newline = tail.find(b"\n")
            if 0 <= newline < len(tail) - 1:
                tail = tail[newline + 1 :]
            self._pending = [tail]
            self._pending_size = len(tail)

    def sync(self, limit: int | None = None, *, lazy: bool = False) -> bool:
        """Run the emulator over what is pending (at most ``limit`` bytes).

        pyte's parser keeps its state between feeds, so a slice may end in the
        middle of an escape sequence. ``lazy``: a hibernating model stays
        asleep while less than ``wake_size`` bytes are pending. Returns True
        while more is pending and was not left alone on purpose.
        """
        if not self._pending:
            return False
        if lazy and self._stream is None and self._pending_size < self._wake_size:
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
        self._wake().feed(self._decoder.decode(data))
        return bool(self._pending)

    def resize(self, rows: int, cols: int) -> None:
        if (rows, cols) == (self._screen.lines, self._screen.columns):
            # What pyte does too; and a sleeping model stays asleep (an attach
            # sends the size it has, for the SIGWINCH that makes TUIs repaint).
            return
        self.sync()
        if self._rows is not None and not any(self._rows):
            # Asleep with a blank screen (a fresh session): nothing to redraw.
            self._screen.resize(rows, cols)
            self._rows = [""] * rows
            return
        self._wake()
        self._screen.resize(rows, cols)

    def lines(self) -> list[str]:
        """The visible screen as plain text, one string per row, right-trimmed."""
        self.sync()
        if self._rows is not None:
            return [_SGR.sub("", row).rstrip() for row in self._rows]
        return [line.rstrip() for line in self._screen.display]

    def text(self) -> str:
        """Scrollback and screen as plain text (for tests, logs and matching)."""
        self.sync()
        history = [_SGR.sub("", line).rstrip() for line in self._screen.scrollback]
        return "\n".join([*history, *self.lines()]).rstrip("\n")

    def snapshot(self) -> str:
        """ANSI text that redraws scrollback, screen and cursor on a blank terminal.

        A hibernating model goes back to sleep afterwards: an attach to an
        idle session does not keep an emulator alive.
        """
        asleep = self._rows is not None
        self.sync()
        if asleep:
            self.hibernate()
        screen = self._screen
        visible = self._rows
        if visible is None:
            visible = [render_line(screen.buffer[y], screen.columns) for y in range(screen.lines)]
        rows = [*screen.scrollback, *visible]
        out = ["\x1b[0m\x1b[H\x1b[2J", "\r\n".join(rows)]
        out.append(f"\x1b[0m\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H")
        if screen.cursor.hidden:
            out.append("\x1b[?25l")
        return "".join(out)
