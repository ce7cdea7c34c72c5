"""``agentpty`` command lines run as separate processes: on a PTY of their own, or piped.

``PtyCli`` is the local terminal a person would use: the test owns the PTY's
master side, types into it, resizes it and reads what the CLI draws through
pyte. The CLI gets the slave side as stdin, stdout, stderr and controlling
terminal, so it receives SIGWINCH when the window changes, as under a real
terminal emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
import termios
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyte

from tests.helpers import TOKEN, timeout

__all__ = ["CliResult", "PtyCli", "cli_env", "run_cli"]


def cli_env(base_url: str, **extra: str) -> dict[str, str]:
    """Environment for a CLI process that talks to ``base_url`` with the test token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPTY_")}
    return {**env, "AGENTPTY_URL": base_url, "AGENTPTY_TOKEN": TOKEN, **extra}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


async def run_cli(
    args: Sequence[str], env: dict[str, str], stdin: bytes | None = None, wait: float = 60
) -> CliResult:
    """Run ``python -m agentpty ARGS`` to the end, output captured."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout(wait)):
            out, err = await process.communicate(stdin)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


def _take_terminal() -> None:
    # Runs in the child after setsid: the PTY on stdin becomes its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyCli:
    """One ``agentpty`` process on a fresh PTY; the test is its terminal."""

    def __init__(self, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        termios.tcsetwinsize(self.master, (rows, cols))
        os.set_blocking(self.master, False)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_output)

    @classmethod
    @contextlib.asynccontextmanager
    async def run(
        cls, args: Sequence[str], env: dict[str, str], **size: Any
    ) -> AsyncIterator[PtyCli]:
        term = cls(**size)
        try:
            term.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentpty",
                *args,
                env=env,
                stdin=term.slave,
                stdout=term.slave,
                stderr=term.slave,
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
            yield term
        finally:
            await term.close()

    def _on_output(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: no process has the slave open
            data = b""
        if not data:
            self._loop.remove_reader(self.master)
            return
        self.raw += data
        self.stream.feed(data)
        self._changed.set()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    async def read_screen_until(self, text: str, wait: float = 20) -> str:
        """Wait until ``text`` is on the screen the CLI drew."""
        try:
            async with asyncio.timeout(timeout(wait)):
                while text not in self.text():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{text!r} not on the screen within {wait} s; it showed:\n{self.text()}"
            ) from None
        return self.text()

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size, as a terminal emulator does (the CLI gets SIGWINCH)."""
        self.screen.resize(rows, cols)
        termios.tcsetwinsize(self.master, (rows, cols))

    def modes(self) -> list[Any]:
        """The termios modes of the CLI's terminal."""
        return termios.tcgetattr(self.slave)

    async def wait(self, wait: float = 30) -> int:
        """The CLI's exit status, once it has exited."""
        assert self.process is not None
        try:
            async with asyncio.timeout(timeout(wait)):
                return await self.process.wait()
        except TimeoutError:
            raise AssertionError(
                f"the CLI did not exit within {wait} s; the screen showed:\n{self.text()}"
            ) from None

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
