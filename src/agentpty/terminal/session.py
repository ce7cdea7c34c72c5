"""A terminal session: one PTY process, its screen, and the clients attached.

One reader (the PTY's ``add_reader`` callback) coalesces output into frames
(a few ms or tens of KiB, whichever comes first) and hands each frame to
every subscriber's bounded queue. Output stays bytes on this path: a read is
only cut so that no frame ends inside a UTF-8 character, and text is decoded
where it is needed (the screen model when it catches up, JSON clients, output
listeners), not per read.

Flow control: while *every* client is more than a quarter of its backlog behind, the
PTY is not read (the agent's writes wait in the kernel, as they would for a
slow terminal), so a client that is merely slower than the agent gets every
byte. That hold lasts at most ``hold_limit``: a client still behind then is
not waited for any more; when its queue overflows its backlog is dropped and
its next frame is a fresh snapshot of the screen (a resync). A client that
keeps up is never held back by one that does not.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentpty.domain.errors import Conflict, InvalidInput
from agentpty.domain.models import SessionState, utcnow
from agentpty.terminal.process import ProcessFactory, local_process
from agentpty.terminal.screen import ScreenModel
from agentpty.terminal.subscriber import Frame, Subscriber, complete_utf8

__all__ = ["Frame", "SessionLimits", "Subscriber", "TerminalSession"]

log = logging.getLogger(__name__)

SIGNALS: dict[str, int | None] = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "EOF": None}


@dataclass(frozen=True)
class SessionLimits:
    """Tunables of a session; the defaults suit interactive agents."""

    coalesce_delay: float = 0.004
    coalesce_size: int = 64 * 1024
    #: Output this small after a quiet spell is sent without waiting.
    immediate_size: int = 512
    #: Bytes a client may fall behind before it is resynchronised from a snapshot.
    subscriber_backlog: int = 256 * 1024
    #: Most bytes a client takes in one frame: bounds what one send holds in memory.
    subscriber_frame: int = 64 * 1024
    #: Longest the PTY goes unread because every client is behind (then they resync).
    hold_limit: float = 0.5
    screen_sync_delay: float = 0.05
    screen_sync_slice: int = 16 * 1024
    #: Quiet seconds after which the screen model drops its emulator state (memory).
    screen_hibernate_delay: float = 5.0
    scrollback: int = 1000
    stop_grace: float = 3.0


class TerminalSession:
    """One PTY process shared by any number of subscribers.

    ``on_exit`` callbacks run once when the process has exited and its last
    output was delivered. ``on_output`` listeners see every coalesced frame.
    """

    def __init__(
        self,
        key: str,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        rows: int = 24,
        cols: int = 80,
        idle_timeout: float | None = None,
        limits: SessionLimits | None = None,
        process_factory: ProcessFactory = local_process,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.key = key
        self.limits = limits or SessionLimits()
        self.state = SessionState.NONE
        self.started_at = utcnow()
        self.idle_timeout = idle_timeout
        self._process = process_factory(
            key,
            argv,
            cwd=cwd,
            env=env,
            rows=rows,
            cols=cols,
            on_output=self._on_bytes,
            on_exit=self._on_process_exit,
            idle_timeout=idle_timeout,
            grace=self.limits.stop_grace,
            meta=meta or {},
        )
        self._carry = b""  # the start of a character whose other bytes are still to come
        self.screen = ScreenModel(rows, cols, scrollback=self.limits.scrollback)
        self._subscribers: set[Subscriber] = set()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        #: Set while the PTY is not read because every client is behind.
        self._hold_handle: asyncio.TimerHandle | None = None
        self._sync_handle: asyncio.Handle | None = None
        self._sleep_handle: asyncio.TimerHandle | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._output_listeners: list[Callable[[str], None]] = []
        self._exit_callbacks: list[Callable[[int], None]] = []
        self._stop_task: asyncio.Task[int] | None = None
        self.stop_reason: str | None = None

    # -- facts

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        return self._process.exit_code

    @property
    def size(self) -> tuple[int, int]:
        return self._process.rows, self._process.cols

    @property
    def containment(self) -> str:
        """How the session's processes are found on stop (``cgroup``, ``process-tree``, ...)."""
        return self._process.containment

    @property
    def survives_server(self) -> bool:
        return self._process.survives_server

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    @property
    def alive(self) -> bool:
        return self.state in (SessionState.STARTING, SessionState.RUNNING)

    # -- lifecycle

    def start(self) -> None:
        """Spawn an in-process child (raises ``SessionStartError``); see ``launch``."""
        self._loop = asyncio.get_running_loop()
        self.state = SessionState.STARTING
        spawn = getattr(self._process, "spawn", None)
        if spawn is None:
            raise TypeError("this session's process starts asynchronously: use launch()")
        spawn()
        self._started()

    async def launch(self) -> None:
        """Start the process, wherever it lives (raises ``SessionStartError``)."""
        self._loop = asyncio.get_running_loop()
        self.state = SessionState.STARTING
        try:
            await self._process.launch()
        except BaseException:
            self.state = SessionState.NONE
            raise
        self._started()

    async def adopt(self) -> None:
        """Follow a process that is already running; its recent output rebuilds the screen."""
        self._loop = asyncio.get_running_loop()
        self.state = SessionState.RUNNING
        try:
            await self._process.adopt()
        except BaseException:
            self.state = SessionState.NONE  # not live: the next attach starts a session
            raise
        if self._process.exit_code is None:
            self._started()

    def _started(self) -> None:
        self.started_at = utcnow()
        if self.state != SessionState.EXITED:
            self.state = SessionState.RUNNING
        self._touch()
        self._arm_idle()

    def detach(self) -> None:
        """Stop following the process and leave it running (it must ``survives_server``)."""
        self._process.detach()

    def add_exit_callback(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(exit_code)`` once the process has exited; returns a remover."""
        self._exit_callbacks.append(callback)

        def remove() -> None:
            if callback in self._exit_callbacks:
                self._exit_callbacks.remove(callback)

        return remove

    def add_output_listener(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener`` with every output frame; returns a function that removes it."""
        self._output_listeners.append(listener)

        def remove() -> None:
            if listener in self._output_listeners:
                self._output_listeners.remove(listener)

        return remove

    async def wait(self) -> int:
        """Wait for the process to exit; return its exit code."""
        return await self._process.wait()

    async def stop(self, reason: str = "stopped") -> int:
        """Stop the process gracefully (hangup, SIGTERM, then SIGKILL after the grace period).

        Idempotent: concurrent callers share one stop; cancelling a caller
        does not cancel the stop.
        """
        return await asyncio.shield(self.request_stop(reason))

    def request_stop(self, reason: str = "stopped") -> asyncio.Task[int]:
        """Begin a graceful stop without waiting; the session owns the task."""
        if self._stop_task is None:
            self.stop_reason = reason
            self._stop_task = asyncio.get_running_loop().create_task(
                self._process.terminate(self.limits.stop_grace), name=f"stop {self.key}"
            )
        return self._stop_task

    def _on_process_exit(self, exit_code: int) -> None:
        if self.stop_reason is None:
            self.stop_reason = self._process.exit_reason
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._carry:
            carry, self._carry = self._carry, b""
            self._on_output(carry)
        self._flush()
        self.screen.sync()
        self.state = SessionState.EXITED
        handles = (self._flush_handle, self._sync_handle, self._sleep_handle, self._idle_handle)
        for handle in handles:
            if handle is not None:
                handle.cancel()
        for subscriber in self._subscribers:
            subscriber._close()
        for callback in list(self._exit_callbacks):
            try:
                callback(exit_code)
            except Exception:
                log.exception("exit callback of session %s failed", self.key)

    # -- output path

    def _on_bytes(self, data: bytes) -> None:
        # Hot path: no decoding, only a look at the last bytes of the read.
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if data and data[-1] >= 0x80:
            cut = complete_utf8(data)
            if cut < len(data):
                self._carry = data[cut:]
                data = data[:cut]
        if data:
            self._on_output(data)

    def inject(self, text: str) -> None:
        """Show ``text`` to every client as if the process had printed it (notices)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._on_output(text.encode())

    def _on_output(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        self.screen.append(data)
        self._last_activity = self._now()
        if self._pending_size >= self.limits.coalesce_size:
            self._flush()
        elif self._flush_handle is None and self._pending_size <= self.limits.immediate_size:
            # A small read with nothing waiting (a keystroke's echo) goes out at
            # once; under a flood reads are large and take the coalescing path.
            self._flush()
        elif self._flush_handle is None:
            assert self._loop is not None
            self._flush_handle = self._loop.call_later(self.limits.coalesce_delay, self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        behind = bool(self._subscribers)
        for subscriber in self._subscribers:
            subscriber._feed(data)
            behind = behind and subscriber.behind
        if behind and self._hold_handle is None:
            self._hold()
        if self._output_listeners:
            text = data.decode("utf-8", "replace")
            for listener in list(self._output_listeners):
                try:
                    listener(text)
                except Exception:
                    log.exception("output listener of session %s failed", self.key)
        if self._sync_handle is not None:
            self._sync_handle.cancel()
        assert self._loop is not None
        self._sync_handle = self._loop.call_later(self.limits.screen_sync_delay, self._sync_screen)

    def _hold(self) -> None:
        """Stop reading the PTY until a client catches up, for ``hold_limit`` at most."""
        assert self._loop is not None
        self._process.pause_reading()
        self._hold_handle = self._loop.call_later(self.limits.hold_limit, self._release)

    def _release(self) -> None:
        if self._hold_handle is not None:
            self._hold_handle.cancel()
            self._hold_handle = None
            self._process.resume_reading()

    def caught_up(self) -> None:
        """A client's queue ran low: read the PTY again if it was held for the clients."""
        if self._hold_handle is not None:
            self._release()

    def _sync_screen(self) -> None:
        """Catch the screen model up in slices, so other sessions are not held up."""
        assert self._loop is not None
        if self.screen.sync(limit=self.limits.screen_sync_slice, lazy=True):
            self._sync_handle = self._loop.call_soon(self._sync_screen)
        else:
            self._sync_handle = None
            self._sleep_later()

    def _sleep_later(self) -> None:
        """Let the screen model hibernate if output stays quiet (memory of idle sessions)."""
        if self._sleep_handle is not None:
            self._sleep_handle.cancel()
        if not self.screen.hibernating and self._loop is not None:
            self._sleep_handle = self._loop.call_later(
                self.limits.screen_hibernate_delay, self.screen.hibernate
            )

    def snapshot(self) -> str:
        """The screen and recent scrollback as ANSI text, including unflushed output."""
        self._flush()
        snapshot = self.screen.snapshot()
        if self._sync_handle is None:
            self._sleep_later()
        return snapshot

    # -- clients

    def subscribe(self) -> tuple[Subscriber, str]:
        """Attach a client: return its subscriber and the snapshot to show first.

        Snapshot and registration happen together, so nothing is lost or shown twice.
        """
        snapshot = self.snapshot()
        subscriber = Subscriber(self, self.limits.subscriber_backlog, self.limits.subscriber_frame)
        if self.state == SessionState.EXITED:
            subscriber._close()
        self._subscribers.add(subscriber)
        self._touch()
        self._process.set_clients(len(self._subscribers))
        return subscriber, snapshot

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._release()  # whoever is left may not be behind
        self._touch()
        self._process.set_clients(len(self._subscribers))
        self._arm_idle()

    # -- input and control

    def send_input(self, data: str | bytes) -> None:
        """Write input to the process (raises ``Conflict`` once it has exited)."""
        if not self.alive:
            raise Conflict("the session has exited; start it again to send input")
        self._process.write(data.encode() if isinstance(data, str) else data)
        self._touch()

    def resize(self, rows: int, cols: int) -> None:
        if not (1 <= rows <= 1000 and 1 <= cols <= 1000):
            raise InvalidInput(f"rows and cols must be within 1..1000, got {rows}x{cols}")
        self._flush()
        self.screen.resize(rows, cols)
        if self._sync_handle is None:
            self._sleep_later()
        self._process.resize(rows, cols)

    def send_signal(self, name: str) -> None:
        """Deliver SIGINT or SIGTERM to the process group, or EOF (the Ctrl-D byte)."""
        if name not in SIGNALS:
            raise InvalidInput(f"unknown signal {name!r}; use one of {', '.join(SIGNALS)}")
        sig = SIGNALS[name]
        if sig is None:
            self.send_input(b"\x04")
        else:
            self._process.send_signal(sig)

    # -- idle policy

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _touch(self) -> None:
        if self._loop is not None:
            self._last_activity = self._now()

    def _arm_idle(self) -> None:
        if self.idle_timeout is None or self._loop is None or not self.alive:
            return
        if self._process.owns_idle:  # the session host applies it, also with no server
            return
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = self._loop.call_later(self.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        """Stop a session nobody watches that has printed nothing for ``idle_timeout``."""
        self._idle_handle = None
        if not self.alive or self._subscribers or self.idle_timeout is None:
            return
        remaining = self._last_activity + self.idle_timeout - self._now()
        if remaining > 0:
            assert self._loop is not None
            self._idle_handle = self._loop.call_later(remaining, self._check_idle)
            return
        log.info("session %s idle for %.0f s with no client: stopping", self.key, self.idle_timeout)
        self.request_stop("idle")
