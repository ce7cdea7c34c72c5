"""The local terminal of ``agentpty attach``: raw mode in, everything restored out.

``LocalTerminal`` is a context manager. Entering saves the termios modes of
stdin and switches it to raw mode (every key, Ctrl-C included, goes to the
agent); leaving restores the saved modes exactly and undoes the display
modes an agent may have switched on with escape sequences (mouse reporting,
bracketed paste, hidden cursor, application keys), so the shell the user
returns to behaves as before. Leaving runs on every way out: a normal
return, an exception, and the signals the caller turns into a return
(``attach`` handles SIGTERM and SIGHUP that way).

When stdin is not a terminal nothing is switched and nothing restored.
stdin keeps its blocking mode: it usually shares one open file with
stdout, and a non-blocking stdout would fail writes with EAGAIN.
"""

from __future__ import annotations

import contextlib
import os
import termios
import tty
from types import TracebackType
from typing import Any

__all__ = ["LocalTerminal"]

#: Undo what a full-screen agent may have left on: SGR, cursor keys and keypad
#: mode, mouse reporting (all encodings), focus events, bracketed paste,
#: then show the cursor and start a fresh line for what the shell prints next.
_RESET_MODES = (
    "\x1b[0m\x1b[?1l\x1b>"
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l"
    "\x1b[?2004l\x1b[?25h\r\n"
)


class LocalTerminal:
    """stdin/stdout of this process, as the terminal a session is shown on."""

    def __init__(self, stdin: int = 0, stdout: int = 1) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.is_tty = os.isatty(stdin)
        self._saved: list[Any] | None = None

    def size(self) -> tuple[int, int] | None:
        """(rows, cols) of the local window, or None when it has no size."""
        for fd in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                rows, cols = termios.tcgetwinsize(fd)
                if rows > 0 and cols > 0:
                    return rows, cols
        return None

    def write(self, data: bytes) -> None:
        """Write all of ``data`` to stdout (blocking: the terminal sets the pace)."""
        view = memoryview(data)
        while view:
            written = os.write(self.stdout, view)
            view = view[written:]

    def __enter__(self) -> LocalTerminal:
        if self.is_tty:
            self._saved = termios.tcgetattr(self.stdin)
            # TCSADRAIN, not TCSAFLUSH: keys typed while attach connected reach the agent.
            tty.setraw(self.stdin, termios.TCSADRAIN)
        return self

    def restore(self) -> None:
        """Put the terminal back as it was; idempotent."""
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        with contextlib.suppress(OSError):
            self.write(_RESET_MODES.encode())
        # TCSADRAIN: what the agent drew is shown before the modes change back.
        termios.tcsetattr(self.stdin, termios.TCSADRAIN, saved)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()
