"""The detach key of ``agentpty attach``: parsed from its spelling, matched in the input.

I/O free. The detach key is two keys, a prefix and a command (default
``ctrl-\\,d``: Ctrl-\\ then d), as tmux's prefix. What the keys do, byte by byte:

- prefix, then the command key → detach (neither is sent);
- prefix twice → one prefix is sent (that is how the agent still gets it);
- prefix, then any other key → both are sent, in order.

A prefix at the end of one read waits for the next read; it is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_DETACH_KEYS", "DetachKeys", "InvalidKeys", "KeyFilter", "describe_key"]

DEFAULT_DETACH_KEYS = "ctrl-\\,d"
#: Characters that Ctrl turns into a control byte (Ctrl-@ is 0 ... Ctrl-_ is 31).
_CTRL_CHARS = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


class InvalidKeys(ValueError):
    """A detach key spelling that cannot be used; the message says how to write one."""


def _parse_key(spelling: str) -> int:
    text = spelling.strip()
    lowered = text.lower()
    for prefix in ("ctrl-", "c-", "^"):
        if lowered.startswith(prefix) and len(text) == len(prefix) + 1:
            char = lowered[-1]
            if char == "?":
                return 0x7F
            if char in _CTRL_CHARS:
                return _CTRL_CHARS.index(char)
            raise InvalidKeys(f"{spelling!r}: Ctrl works with a letter or one of @[\\]^_?")
    if len(text) == 1 and 0x20 <= ord(text) < 0x7F:
        return ord(text)
    raise InvalidKeys(
        f"{spelling!r} is not a key: write a printable character or ctrl-<letter> "
        "(e.g. 'ctrl-\\,d' or 'ctrl-a,q')"
    )


def describe_key(byte: int) -> str:
    """How a person calls the key that sends ``byte`` (``Ctrl-\\``, ``d``)."""
    if byte == 0x7F:
        return "Ctrl-?"
    if byte < 0x20:
        return "Ctrl-" + _CTRL_CHARS[byte].upper()
    return chr(byte)


@dataclass(frozen=True)
class DetachKeys:
    """A prefix key and a command key, each one byte."""

    prefix: int
    command: int

    @classmethod
    def parse(cls, spelling: str) -> DetachKeys:
        """``"ctrl-\\,d"`` → prefix 0x1c, command ``d``; ``InvalidKeys`` if it is not two keys."""
        parts = spelling.split(",")
        # A comma as a key itself: "ctrl-a,," splits into three parts, the last two empty.
        if len(parts) == 3 and parts[1:] == ["", ""]:
            parts = [parts[0], ","]
        if len(parts) != 2:
            raise InvalidKeys(
                f"{spelling!r}: give two keys separated by a comma, a prefix and a "
                "command key (e.g. 'ctrl-\\,d')"
            )
        prefix, command = (_parse_key(part) for part in parts)
        if prefix == command:
            raise InvalidKeys(f"{spelling!r}: the prefix and the command key must differ")
        return cls(prefix, command)

    def __str__(self) -> str:
        return f"{describe_key(self.prefix)} {describe_key(self.command)}"


class KeyFilter:
    """Finds the detach key in the input stream, passing everything else on."""

    def __init__(self, keys: DetachKeys) -> None:
        self.keys = keys
        self._armed = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes to send on, and whether the detach key was completed.

        After a detach, the rest of ``data`` is dropped: the user left.
        """
        out = bytearray()
        prefix, command = self.keys.prefix, self.keys.command
        for byte in data:
            if self._armed:
                self._armed = False
                if byte == command:
                    return bytes(out), True
                out.append(prefix)
                if byte != prefix:
                    out.append(byte)
            elif byte == prefix:
                self._armed = True
            else:
                out.append(byte)
        return bytes(out), False
