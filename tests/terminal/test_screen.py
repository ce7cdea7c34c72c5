"""ScreenModel on escape sequences real agent CLIs send."""

from __future__ import annotations

from agentpty.terminal.screen import ScreenModel


def test_modify_other_keys_query_neither_breaks_nor_styles() -> None:
    """xterm's "CSI > 4 ; ? m" query (Gemini CLI sends it at start-up) is ignored, not a crash."""
    screen = ScreenModel(5, 40)
    screen.append(b"\x1b[>4;?mready\x1b[1m bold\x1b[0m done")
    assert screen.lines()[0] == "ready bold done"
    snapshot = screen.snapshot()
    assert "\x1b[0;1m bold" in snapshot and "\x1b[0;4m" not in snapshot
