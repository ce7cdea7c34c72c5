"""The detach key: its spelling and how it is found in the typed bytes (no I/O)."""

from __future__ import annotations

import pytest

from agentpty.cli.keys import DEFAULT_DETACH_KEYS, DetachKeys, InvalidKeys, KeyFilter


def test_default_is_ctrl_backslash_then_d() -> None:
    """The default detach key is Ctrl-\\ (0x1c) then d, and reads that way."""
    keys = DetachKeys.parse(DEFAULT_DETACH_KEYS)
    assert (keys.prefix, keys.command) == (0x1C, ord("d"))
    assert str(keys) == "Ctrl-\\ d"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("ctrl-a,q", (1, ord("q"))), ("^B,x", (2, ord("x"))), ("C-],,", (0x1D, ord(",")))],
)
def test_spellings(spelling: str, expected: tuple[int, int]) -> None:
    """ctrl-x, ^x and C-x name control keys; a comma can be the command key."""
    keys = DetachKeys.parse(spelling)
    assert (keys.prefix, keys.command) == expected


@pytest.mark.parametrize("spelling", ["d", "ctrl-a,b,c", "ctrl-1,d", "ctrl-a,ctrl-a", "ab,d"])
def test_bad_spellings_say_how_to_write_one(spelling: str) -> None:
    """Anything but two different keys is refused with a message showing an example."""
    with pytest.raises(InvalidKeys, match=r"ctrl|differ|two keys"):
        DetachKeys.parse(spelling)


def test_prefix_then_command_detaches_and_drops_the_rest() -> None:
    """Prefix then command detaches; keys before pass, keys after are dropped."""
    keys = KeyFilter(DetachKeys.parse(DEFAULT_DETACH_KEYS))
    assert keys.feed(b"ls\x1cdmore") == (b"ls", True)


def test_prefix_twice_sends_one_prefix() -> None:
    """The prefix pressed twice sends it once, and the filter is back to normal."""
    keys = KeyFilter(DetachKeys.parse(DEFAULT_DETACH_KEYS))
    assert keys.feed(b"\x1c\x1cd") == (b"\x1cd", False)


def test_prefix_then_other_key_sends_both() -> None:
    """The prefix followed by another key sends both, in order."""
    keys = KeyFilter(DetachKeys.parse(DEFAULT_DETACH_KEYS))
    assert keys.feed(b"\x1cx") == (b"\x1cx", False)


def test_prefix_at_the_end_of_a_read_waits_for_the_next() -> None:
    """A prefix split from its command key across two reads still detaches."""
    keys = KeyFilter(DetachKeys.parse(DEFAULT_DETACH_KEYS))
    assert keys.feed(b"a\x1c") == (b"a", False)
    assert keys.feed(b"d") == (b"", True)
