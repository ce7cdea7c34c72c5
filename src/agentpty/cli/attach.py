"""``agentpty attach``: this terminal becomes a project's terminal, until detached.

It speaks the WebSocket protocol of ``terminal/protocol.py`` (JSON text
frames). Order of events: connect (the server starts or resumes the session),
read ``status``, switch the local terminal to raw mode, draw the snapshot,
then relay both ways until one of these ends it:

====================================  ==========================================
what happened                         exit status
====================================  ==========================================
the detach key (default Ctrl-\\ d)     0; the agent keeps running
the agent exited (``closed`` frame)   the agent's exit code (128+n for signal n)
the connection failed or was lost     1, with one line saying why
SIGTERM / SIGHUP / SIGINT to attach   128 + the signal's number
====================================  ==========================================

The local terminal is restored on every one of these (``LocalTerminal``).
Nothing polls: stdin is watched with ``loop.add_reader``, window changes
arrive as SIGWINCH, frames as the socket delivers them. Input goes through
one queue to one sender task, so keys and resizes reach the server in the
order they happened; the stdin reader pauses while the queue is long.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake
from websockets.typing import Subprotocol

from agentpty.cli.client import CliError, Target
from agentpty.cli.keys import DetachKeys, KeyFilter
from agentpty.cli.localterm import LocalTerminal
from agentpty.terminal.protocol import BINARY, parse_server_frame

__all__ = ["Ending", "attach_session"]

#: Stop reading stdin while this many input messages wait to be sent.
_HIGH_WATER = 64
#: Characters per input frame: the server takes frames up to 64 KiB of JSON,
#: and a control character costs 6 bytes there (\\u001b).
_MAX_INPUT_CHARS = 8192
_CLOSE_REASONS = {
    4000: "the project id is malformed",
    4001: "the server refused the token; set AGENTPTY_TOKEN to the token 'agentpty serve' printed",
    4003: "the server refused this client's Origin",
    4004: "no such project",
    4005: "the session could not start",
}
_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


@dataclass(frozen=True)
class Ending:
    """How an attachment ended: its exit status, and ``detached``, ``exited`` or a signal name."""

    status: int
    how: str


def _status_line(text: str) -> bytes:
    """One dim line, on a line of its own, in the local terminal."""
    return f"\r\n\x1b[2m[agentpty] {text}\x1b[0m\r\n".encode()


def _exit_status(code: Any) -> int:
    if not isinstance(code, int):
        return 1
    if code < 0:  # killed by signal -code
        return 128 - code
    return code & 0xFF


class _Attachment:
    """One attached terminal: the relay between the socket and the local terminal."""

    def __init__(
        self,
        ws: ClientConnection,
        term: LocalTerminal,
        keys: DetachKeys,
        read_only: bool,
    ) -> None:
        self.ws = ws
        self.term = term
        self.read_only = read_only
        self.filter = KeyFilter(keys)
        self.keys = keys
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.reading = False
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Ending] = self.loop.create_future()
        self.pending_line: bytes = b""
        self.statuses = 0

    # -- local side: stdin, signals

    def _on_stdin(self) -> None:
        data = _read(self.term.stdin)
        if not data:  # end of input: nothing more can be typed
            self._pause_stdin()
            if not self.read_only:
                self.finish(0, "detached")
            return
        passed, detach = self.filter.feed(data)
        if passed and not self.read_only:
            text = self.decoder.decode(passed)
            for start in range(0, len(text), _MAX_INPUT_CHARS):
                self.queue.put_nowait(
                    {"type": "input", "data": text[start : start + _MAX_INPUT_CHARS]}
                )
            if self.queue.qsize() >= _HIGH_WATER:
                self._pause_stdin()
        if detach:
            self.finish(0, "detached")

    def _pause_stdin(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.term.stdin)
            self.reading = False

    def _resume_stdin(self) -> None:
        if not self.reading and not self.done.done():
            try:
                self.loop.add_reader(self.term.stdin, self._on_stdin)
            except PermissionError as exc:  # epoll refuses regular files
                raise CliError(
                    "attach reads keys from a terminal or a pipe, not a file; "
                    "use --read-only </dev/null to only watch"
                ) from exc
            self.reading = True

    def _on_winch(self) -> None:
        size = self.term.size()
        if size is not None:
            rows, cols = (min(max(n, 1), 1000) for n in size)
            self.queue.put_nowait({"type": "resize", "rows": rows, "cols": cols})

    def finish(self, status: int, how: str) -> None:
        if not self.done.done():
            self.done.set_result(Ending(status, how))

    # -- the two pumps

    async def _pump_in(self) -> None:
        while True:
            message = await self.queue.get()
            # Keys typed faster than the round trip travel together.
            while (
                message["type"] == "input"
                and not self.queue.empty()
                and len(message["data"]) < _MAX_INPUT_CHARS
            ):
                nxt = self.queue.get_nowait()
                if nxt["type"] != "input":
                    await self.ws.send(json.dumps(message))
                    message = nxt
                    break
                message = {"type": "input", "data": message["data"] + nxt["data"]}
            await self.ws.send(json.dumps(message))
            if self.queue.qsize() < _HIGH_WATER // 2:
                self._resume_stdin()

    async def _pump_out(self) -> Ending:
        """Relay frames to the screen; the exit status once the agent exited."""
        async for raw in self.ws:
            message = parse_server_frame(raw)
            kind, frame = message.type, message.fields
            if kind == "output":
                # The binary dialect: the PTY's own bytes, written as they came.
                self.term.write(message.data)
                if self.pending_line:
                    self.term.write(self.pending_line)
                    self.pending_line = b""
            elif kind == "status":
                self.on_status(frame)
            elif kind == "error":
                if frame.get("code") == "SESSION_EXPIRED":
                    self.term.write(_status_line(str(frame.get("message"))))
                else:
                    self.term.write(
                        _status_line(f"error {frame.get('code')}: {frame.get('message')}")
                    )
            elif kind == "closed":
                return Ending(_exit_status(frame.get("exit_code")), "exited")
            # Other frame types (newer servers) are not for this client.
        code, reason = self.ws.close_code, self.ws.close_reason
        raise CliError(f"the server closed the connection ({code} {reason})".strip())

    def on_status(self, frame: dict[str, Any]) -> None:
        """A status says a session (re)started; shown as one dim line, never as JSON.

        The first one arrives before the snapshot, which clears the screen:
        its line is drawn right after the snapshot instead.
        """
        self.statuses += 1
        conversation = str(frame.get("agent_session_id") or "")[:8]
        parts = []
        if frame.get("resumed") and conversation:
            parts.append(f"resumed conversation {conversation}")
        elif self.statuses > 1:
            parts.append(f"new session (pid {frame.get('pid')})")
        if self.read_only and self.statuses == 1:
            parts.append(f"read-only; {self.keys} detaches")
        line = _status_line("; ".join(parts)) if parts else b""
        if self.statuses == 1:
            self.pending_line = line
        elif line:
            self.term.write(line)

    # -- the whole attachment

    async def run(self, status: dict[str, Any]) -> Ending:
        self.on_status(status)
        handled: list[signal.Signals] = []
        try:
            for signum in _SIGNALS:
                self.loop.add_signal_handler(signum, self.finish, 128 + signum, signum.name)
                handled.append(signum)
            if not self.read_only:
                self.loop.add_signal_handler(signal.SIGWINCH, self._on_winch)
                handled.append(signal.SIGWINCH)
            with self.term:
                self._resume_stdin()
                return await self._relay()
        finally:
            self._pause_stdin()
            for signum in handled:
                self.loop.remove_signal_handler(signum)

    async def _relay(self) -> Ending:
        out = asyncio.create_task(self._pump_out(), name="attach: output")
        inp = asyncio.create_task(self._pump_in(), name="attach: input")
        try:
            waiters: set[asyncio.Future[Any]] = {out, inp, self.done}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self.done.done():
                return self.done.result()
            if out.done():
                return _connection_result(out)
            return _connection_result(inp)
        finally:
            for task in (out, inp):
                task.cancel()
            for task in (out, inp):
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, CliError):
                    await task


def _connection_result(task: asyncio.Task[Any]) -> Ending:
    exc = task.exception()
    if exc is None:
        result: Ending = task.result()
        return result
    if isinstance(exc, ConnectionClosedError | OSError):
        raise CliError(f"lost the connection to the server ({exc})") from exc
    if isinstance(exc, ConnectionClosed):
        raise CliError(f"the server closed the connection ({exc})") from exc
    raise exc


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal went away
        return b""


async def _first_status(ws: ClientConnection) -> dict[str, Any]:
    """The first ``status``; a refusal (error frame, close code) becomes a ``CliError``."""
    message = ""
    try:
        while True:
            frame = parse_server_frame(await ws.recv())
            if frame.type == "status":
                return {"type": "status", **frame.fields}
            if frame.type == "error":
                message = str(frame.fields.get("message"))
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        reason = _CLOSE_REASONS.get(code or 0, f"the server closed the connection ({exc})")
        raise CliError(f"{reason}: {message}" if message else reason) from exc


async def attach_session(
    target: Target,
    project_id: str,
    *,
    keys: DetachKeys,
    read_only: bool,
    term: LocalTerminal,
) -> Ending:
    """Attach ``term`` to the project's session until it ends (table in the module doc)."""
    size = None if read_only else term.size()
    query = f"?rows={size[0]}&cols={size[1]}" if size else ""
    url = f"{target.ws_url}/api/output-projects/{project_id}/terminal{query}"
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {target.token}"},
            # Output is already small frames on loopback; compression pays off remotely.
            compression=None if target.is_loopback else "deflate",
            max_size=32 * 1024 * 1024,
            # Output as the PTY's bytes in binary frames: no JSON to decode per frame.
            subprotocols=[Subprotocol(BINARY)],
            open_timeout=30,
        )
    except (OSError, TimeoutError) as exc:
        raise CliError(
            f"no agentpty server at {target.url} ({exc}); start one with 'agentpty serve' "
            "or point --url / AGENTPTY_URL at it"
        ) from exc
    except InvalidHandshake as exc:
        raise CliError(f"{target.url} did not accept a terminal WebSocket: {exc}") from exc
    async with ws:
        status = await _first_status(ws)
        return await _Attachment(ws, term, keys, read_only).run(status)
