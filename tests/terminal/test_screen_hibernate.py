"""The screen model asleep and awake: the same screen, scrollback and text either way."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentpty.terminal.screen import ScreenModel

#: Colours, bold, a scroll region, cursor moves, a hidden cursor, wide characters.
TUI = (
    "\x1b[1;32mgreen bold\x1b[0m plain \x1b[38;5;208morange\x1b[0m\r\n"
    "\x1b[48;2;10;20;30m bg \x1b[0m wide: 漢字\r\n"
    "\x1b[2;5r\x1b[3;1Hin the region\x1b[?25l\x1b[4;7H\x1b[7mrev"
)
PIECES = st.sampled_from(
    [
        "abc",
        "é",
        "漢",
        "\r\n",
        "\n",
        "\x1b[1m",
        "\x1b[0m",
        "\x1b[31m",
        "\x1b[2;3H",
        "\x1b[K",
        "\x1b[4h",
        "\x1b[4l",
        "\x1b[3;8r",
        "\x1b[r",
        "\x1b[?25l",
        "\x1b[?25h",
        "\t",
        " ",
    ]
)


def model(text: str) -> ScreenModel:
    screen = ScreenModel(6, 20, scrollback=50)
    screen.append(text.encode())
    screen.sync()
    return screen


def test_hibernating_keeps_snapshot_and_text() -> None:
    """Asleep, the model shows exactly what it showed awake, and drops pyte's buffer."""
    screen = model(TUI)
    before, text = screen.snapshot(), screen.text()
    assert screen.hibernate() and screen.hibernating
    assert screen.snapshot() == before
    assert screen.text() == text


def test_output_after_waking_lands_where_it_would_have() -> None:
    """Output after a sleep (cursor, modes, scroll region, style kept) matches a model that
    never slept."""
    awake, sleeper = model(TUI), model(TUI)
    assert sleeper.hibernate()
    more = "\x1b[1mX\x1b[0m\r\nnext\r\nline\r\nmore\r\nand more\r\n" * 3
    for screen in (awake, sleeper):
        screen.append(more.encode())
        screen.sync()
    assert not sleeper.hibernating
    assert sleeper.snapshot() == awake.snapshot()
    assert sleeper.text() == awake.text()


def test_a_quiet_prompt_builds_no_emulator_until_it_is_needed() -> None:
    """A little output leaves a lazy sync asleep; a snapshot then shows it all the same."""
    screen = ScreenModel(6, 20)
    screen.append(b"\x1b[1mbench-ready$\x1b[0m ")
    assert not screen.sync(lazy=True)
    assert screen.hibernating
    assert "bench-ready$" in screen.snapshot() and screen.lines()[0] == "bench-ready$"
    screen.append(b"x" * 5000)
    screen.sync(lazy=True)  # enough pending: the emulator runs
    assert not screen.hibernating


def test_resizing_keeps_the_screen_asleep_or_awake_alike() -> None:
    """A resize of a blank sleeping model keeps it asleep; with content it matches an awake one."""
    blank = ScreenModel(6, 20)
    blank.resize(10, 40)
    assert blank.hibernating and blank.lines() == [""] * 10
    awake, sleeper = model(TUI), model(TUI)
    sleeper.hibernate()
    for screen in (awake, sleeper):
        screen.resize(4, 12)
        screen.append(b"after resize")
        screen.sync()
    assert sleeper.snapshot() == awake.snapshot()


def test_no_sleep_inside_an_escape_sequence() -> None:
    """A model whose parser is in the middle of a sequence stays awake."""
    screen = model("abc\x1b[3")
    assert not screen.hibernate()
    screen.append(b"1mred")
    screen.sync()
    assert "red" in screen.text()


@settings(max_examples=60, deadline=None)
@given(first=st.lists(PIECES, max_size=30), second=st.lists(PIECES, max_size=30))
def test_sleeping_between_any_outputs_changes_nothing(first: list[str], second: list[str]) -> None:
    """For any output, sleeping in between gives the same snapshot as staying awake."""
    awake, sleeper = model("".join(first)), model("".join(first))
    sleeper.hibernate()
    for screen in (awake, sleeper):
        screen.append("".join(second).encode())
        screen.sync()
    assert sleeper.snapshot() == awake.snapshot()
