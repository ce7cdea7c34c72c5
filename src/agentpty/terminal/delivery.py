"""Typing commands into a live session: wait until ready, paste, pause, Enter.

A fixed sleep before typing races the agent's start-up, and a long text with
Enter in one write is taken as a paste and never submitted. So each command
waits until the agent is ready (its marker on screen after output settled, or
output quiet for a while; always bounded by a timeout), is written as a
bracketed paste, and Enter (``\\r``) follows as a separate write after a pause.
Commands of one session go through one FIFO queue and never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from agentpty.terminal.session import TerminalSession

__all__ = [
    "CommandQueue",
    "DeliveryGate",
    "DeliveryOutcome",
    "DeliveryResult",
    "ReadyPolicy",
    "compact",
    "confirm_submitted",
    "output_quiet",
    "wait_ready",
    "watch_outcome",
]

log = logging.getLogger(__name__)

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    EXITED = "exited"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == DeliveryOutcome.DELIVERED


@dataclass(frozen=True)
class ReadyPolicy:
    """How to tell that an agent waits for input, and how to type into it."""

    #: Text on screen meaning "ready"; None: output quiet for ``quiet_time`` is ready.
    marker: str | None = None
    #: Text on screen meaning "still busy" even when the marker shows.
    busy_markers: tuple[str, ...] = ()
    #: Output after submitting that means the command was refused.
    rejection_markers: tuple[str, ...] = ()
    quiet_time: float = 0.5
    #: With a marker, output must still settle this long (the TUI is drawing).
    settle_time: float = 0.15
    timeout: float = 60.0
    submit_pause: float = 0.2
    bracketed_paste: bool = True
    #: How long to watch the output for a rejection after Enter (a busy
    #: marker ends the watch early: the agent took the command).
    rejection_window: float = 3.0
    #: Keys that clear a refused command left in the input box; sent only
    #: while ``marker`` is hidden (the box holds text).
    clear_refused: str | None = None
    #: After Enter, wait up to ``confirm_window`` for a busy marker or the
    #: ready marker's return; if neither shows, press Enter once more.
    confirm_submit: bool = False
    confirm_window: float = 5.0
    #: How the agent echoes a long paste instead of its text (e.g. Codex's
    #: ``[Pasted Content N chars]``); an echo check accepts it too.
    paste_echo: str | None = None
    #: Press Enter once more when the typed text still sits in the input box
    #: after the outcome watch (the Enter was lost).
    resubmit_lost_enter: bool = False
    #: Type a one-line slash command longer than ``typed_over`` in pieces of
    #: this many characters instead of pasting it (0: paste).
    type_slash_commands: int = 0
    typed_over: int = 0


async def wait_ready(session: TerminalSession, policy: ReadyPolicy) -> bool:
    """Wait until ``session`` looks ready for input; False on timeout or exit.

    Event driven: every output frame re-arms a quiet timer; when it fires the
    screen is checked. Safe to cancel.
    """
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    delay = policy.quiet_time if policy.marker is None else policy.settle_time
    timer: asyncio.TimerHandle | None = None

    def check() -> None:
        if not session.alive:
            ready.set()
            return
        if policy.marker is None:
            ready.set()
            return
        lines = session.screen.lines()
        if any(policy.marker in line for line in lines) and not any(
            busy in line for line in lines for busy in policy.busy_markers
        ):
            ready.set()

    def on_output(_text: str) -> None:
        nonlocal timer
        if timer is not None:
            timer.cancel()
        timer = loop.call_later(delay, check)

    remove = session.add_output_listener(on_output)
    remove_exit = session.add_exit_callback(lambda _code: ready.set())
    timer = loop.call_later(delay, check)
    try:
        async with asyncio.timeout(policy.timeout):
            await ready.wait()
    except TimeoutError:
        return False
    finally:
        remove()
        remove_exit()
        if timer is not None:
            timer.cancel()
    return session.alive


#: How often, at most, the screen is checked while output streams in: the
#: emulator is slow, so not after every frame.
CHECK_INTERVAL = 0.1
#: Between the pieces of a command typed as keys (``type_in_pieces``).
TYPING_PAUSE = 0.01


async def watch_outcome(
    session: TerminalSession,
    rejection: Sequence[str],
    acceptance: Sequence[str],
    window: float,
    *,
    after: str | None = None,
    timeout: float = 60.0,
) -> str | None:
    """Watch the screen for ``window`` seconds after a command was submitted.

    Returns the rejection marker that showed first, or None when an
    acceptance marker (the agent got busy), the window's end or the process
    exit came first. A marker "shows" when it occurs more often on the
    screen and its scrollback than when the watch began, so an old refusal
    still on screen does not count. With ``after``, the window only starts
    once that text is on screen (e.g. the prompt of an agent still
    starting), bounded by ``timeout``.

    Markers are matched on the emulated screen: a TUI such as Claude Code
    redraws only the cells that changed, so a word can appear on screen
    without ever being written whole. An acceptance marker also counts when
    it passes through the output stream, because a busy line that is drawn
    and erased at once (a fast answer) may never be on screen when it is
    checked. Refusals are not taken from the stream: a full redraw would
    repeat an old one.
    """
    if not rejection or window <= 0:
        return None
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[str | None] = loop.create_future()
    baseline = session.screen.text()
    before = {marker: baseline.count(marker) for marker in (*rejection, *acceptance)}
    stream = ""  # the end of the output since the watch began
    window_timer: asyncio.TimerHandle | None = None
    check_timer: asyncio.TimerHandle | None = None

    def decide(result: str | None) -> None:
        if not decided.done():
            decided.set_result(result)

    def examine() -> None:
        nonlocal window_timer, check_timer
        check_timer = None
        text = session.screen.text()
        for marker in rejection:
            if text.count(marker) > before[marker]:
                decide(marker)
                return
        if any(text.count(marker) > before[marker] for marker in acceptance):
            decide(None)
        elif window_timer is None and (after is None or after in text):
            window_timer = loop.call_later(window, decide, None)

    def on_output(text: str) -> None:
        nonlocal check_timer, stream
        stream = (stream + text)[-4096:]
        if any(marker in stream for marker in acceptance):
            examine()  # a refusal already on screen still wins
            decide(None)
        elif check_timer is None:
            check_timer = loop.call_later(CHECK_INTERVAL, examine)

    def on_exit(_code: int) -> None:
        examine()  # a refusal printed just before the exit still counts
        decide(None)

    remove = session.add_output_listener(on_output)
    remove_exit = session.add_exit_callback(on_exit)
    examine()
    try:
        async with asyncio.timeout(timeout):
            return await decided
    except TimeoutError:
        return None
    finally:
        remove()
        remove_exit()
        for timer in (window_timer, check_timer):
            if timer is not None:
                timer.cancel()


class DeliveryGate(Protocol):
    """Something that can hold typing back (e.g. while the agent asks the user a question)."""

    def blocked(self) -> bool: ...

    async def cleared(self) -> None:
        """Return once typing may proceed."""
        ...


class CommandQueue:
    """FIFO command delivery into one session."""

    def __init__(self, session: TerminalSession, policy: ReadyPolicy) -> None:
        self.session = session
        self.policy = policy
        # asyncio.Lock wakes waiters in arrival order: that is the FIFO.
        self._lock = asyncio.Lock()
        #: Set by whoever knows more than the screen (the agent's hooks): typing waits on it.
        self.gate: DeliveryGate | None = None

    async def _wait_ready(self) -> bool:
        """Ready on screen and not held by the gate; the gate is checked again after readiness.

        A permission menu can look "ready" on screen; the gate (fed by the
        agent's hooks) keeps a command from being typed into it. Bounded by
        the policy's timeout as a whole.
        """
        try:
            async with asyncio.timeout(self.policy.timeout):
                while True:
                    if self.gate is not None and self.gate.blocked():
                        await self.gate.cleared()
                    if not await wait_ready(self.session, self.policy):
                        return False
                    if self.gate is None or not self.gate.blocked():
                        return True
        except TimeoutError:
            return False

    async def deliver(self, text: str, *, submit: bool = True) -> DeliveryResult:
        """Type ``text`` (and Enter when ``submit``) once the agent is ready.

        The queue is held from the readiness wait to Enter; watching for a
        rejection happens after, while the next command waits for readiness.
        """
        policy = self.policy
        async with self._lock:
            if not await self._wait_ready():
                if not self.session.alive:
                    return DeliveryResult(DeliveryOutcome.EXITED, "the agent exited")
                return DeliveryResult(
                    DeliveryOutcome.TIMED_OUT,
                    f"the agent did not become ready within {policy.timeout:g} s",
                )
            if typed_as_keys(text, policy):
                await type_in_pieces(self.session, text, policy.type_slash_commands)
            else:
                payload = f"{PASTE_START}{text}{PASTE_END}" if policy.bracketed_paste else text
                self.session.send_input(payload)
            if not submit:
                return DeliveryResult(DeliveryOutcome.DELIVERED)
            await asyncio.sleep(policy.submit_pause)  # the TUI must see the paste end first
            if not self.session.alive:
                return DeliveryResult(DeliveryOutcome.EXITED, "the agent exited")
            watcher = self._watch_outcome()
            self.session.send_input("\r")
            # -- agent quirk: an Enter dropped under load (DeliveryHints.confirm_submit)
            if policy.confirm_submit and not await confirm_submitted(self.session, policy):
                log.info("no sign the command was submitted; pressing Enter once more")
                self.session.send_input("\r")
        try:
            rejected = await watcher
        finally:
            watcher.cancel()
        # -- agent quirk: an Enter lost while the TUI settles (DeliveryHints.resubmit_lost_enter)
        if (
            rejected is None
            and policy.resubmit_lost_enter
            and self.session.alive
            and still_in_input_box(self.session, policy.marker, text)
        ):
            log.info("the command still sits in the input box; pressing Enter once more")
            rejected = await self._submit_again()
        if rejected is not None:
            # -- agent quirk: a refused command left in the box (DeliveryHints.clear_refused)
            if (
                policy.clear_refused
                and self.session.alive
                and not _marker_shown(self.session, policy.marker)
            ):
                self.session.send_input(policy.clear_refused)
            return DeliveryResult(DeliveryOutcome.REJECTED, f"the agent answered {rejected!r}")
        return DeliveryResult(DeliveryOutcome.DELIVERED)

    async def press_enter_if_stuck(self, text: str) -> bool:
        """Press Enter once more if ``text`` still sits in the input box; True if pressed.

        For whoever waits on a confirmation that does not come: on a loaded
        machine the TUI may draw the typed text only after the outcome watch
        ended, so the first check for a lost Enter saw nothing to resubmit.
        """
        async with self._lock:
            if self.session.alive and still_in_input_box(self.session, self.policy.marker, text):
                log.info("the command still sits in the input box; pressing Enter once more")
                self.session.send_input("\r")
                return True
        return False

    async def _submit_again(self) -> str | None:
        """Press Enter once more (under the queue's lock); the refusal that follows, if any."""
        async with self._lock:
            watcher = self._watch_outcome()
            self.session.send_input("\r")
        try:
            return await watcher
        finally:
            watcher.cancel()

    def _watch_outcome(self) -> asyncio.Future[str | None]:
        """Start watching for a refusal (or a busy marker) before Enter is pressed."""
        policy = self.policy
        return asyncio.ensure_future(
            watch_outcome(
                self.session,
                policy.rejection_markers,
                policy.busy_markers,
                policy.rejection_window,
            )
        )


# -- helpers for agent quirks (DeliveryHints) and for learning ids after a command


def still_in_input_box(session: TerminalSession, marker: str | None, text: str) -> bool:
    """True when the input box (from the last line holding ``marker``) still holds ``text``.

    A submitted prompt leaves the box (the agent echoes it above and empties
    it); one whose Enter was lost stays, as typed or as the agent's
    placeholder for a long paste (Claude Code: ``[Pasted text``).
    """
    box = input_box_text(session.screen.lines(), marker)
    probe = compact(text)[:40]
    if box is None or not probe:
        return False
    return probe in compact(box) or "[Pasted text" in box


#: Characters that draw an input box's rules and borders (U+2500 to U+257F).
_BOX_DRAWING = "".join(chr(code) for code in range(0x2500, 0x2580))
_NOT_TEXT = re.compile(rf"[\s{_BOX_DRAWING}]+")


def compact(text: str) -> str:
    """``text`` without whitespace and box-drawing characters, for comparing what was
    typed with what a TUI drew: a wrap may split a word, replace a space or put a
    box's border between two halves of one line."""
    return _NOT_TEXT.sub("", text)


#: Wrapped rows of one input box read at most.
_BOX_ROWS = 12


def input_box_text(lines: list[str], marker: str | None) -> str | None:
    """The text in the input box that starts at the last line holding ``marker``.

    A long command wraps onto the rows below the marker, up to the box's
    rule or border (a row of box-drawing characters only); the rows are
    joined with single spaces. None when no line holds the marker.
    """
    if marker is None:
        return None
    starts = [i for i, line in enumerate(lines) if marker in line]
    if not starts:
        return None
    first = starts[-1]
    rows = [lines[first].split(marker, 1)[1].strip().strip(_BOX_DRAWING)]
    for line in lines[first + 1 : first + 1 + _BOX_ROWS]:
        inner = line.strip().strip(_BOX_DRAWING).strip()
        if not inner:
            break
        rows.append(inner)
    return " ".join(" ".join(rows).split())


def typed_as_keys(text: str, policy: ReadyPolicy) -> bool:
    """True for a one-line slash command the policy wants typed, not pasted."""
    return (
        bool(policy.type_slash_commands)
        and len(text) > policy.typed_over
        and text.startswith("/")
        and "\n" not in text
    )


async def type_in_pieces(session: TerminalSession, text: str, size: int) -> None:
    """Write ``text`` in pieces of ``size`` characters, ``TYPING_PAUSE`` apart.

    A TUI tells a paste from typing by how much arrives in one read; pieces
    well under its paste threshold, spaced out, stay "typed" even when a
    loaded machine lets two or three of them arrive together.
    """
    for start in range(0, len(text), size):
        if start:
            await asyncio.sleep(TYPING_PAUSE)
        session.send_input(text[start : start + size])


def _marker_shown(session: TerminalSession, marker: str | None) -> bool:
    """True when ``marker`` is on the visible screen (False without a marker)."""
    return marker is not None and any(marker in line for line in session.screen.lines())


async def confirm_submitted(session: TerminalSession, policy: ReadyPolicy) -> bool:
    """True once a submission shows; False if nothing shows within ``confirm_window``.

    Shows: a busy marker on screen or in the output stream, the ready
    marker on screen after output that followed the Enter (the input box
    emptied), or a new refusal (the Enter was taken; the command was not).
    The process exiting also ends the wait (True: nothing to retry).
    """
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[bool] = loop.create_future()
    baseline = session.screen.text()
    refusals = {marker: baseline.count(marker) for marker in policy.rejection_markers}
    stream = ""
    check_timer: asyncio.TimerHandle | None = None

    def decide(value: bool) -> None:
        if not decided.done():
            decided.set_result(value)

    def examine() -> None:
        nonlocal check_timer
        check_timer = None
        lines = session.screen.lines()
        busy = any(marker in line for line in lines for marker in policy.busy_markers)
        text = session.screen.text()
        refused = any(text.count(marker) > n for marker, n in refusals.items())
        if busy or refused or _marker_shown(session, policy.marker):
            decide(True)

    def on_output(text: str) -> None:
        nonlocal check_timer, stream
        stream = (stream + text)[-4096:]
        if any(busy in stream for busy in policy.busy_markers):
            decide(True)
        elif check_timer is None:
            check_timer = loop.call_later(CHECK_INTERVAL, examine)

    remove = session.add_output_listener(on_output)
    remove_exit = session.add_exit_callback(lambda _code: decide(True))
    window = loop.call_later(policy.confirm_window, decide, False)
    try:
        return await decided
    finally:
        remove()
        remove_exit()
        window.cancel()
        if check_timer is not None:
            check_timer.cancel()


async def output_quiet(session: TerminalSession, quiet: float, timeout: float) -> bool:
    """Wait for the next output and then ``quiet`` seconds without any; False on timeout or exit.

    A moment when the agent has just written something (e.g. its files) and
    paused: a good time to look at what it wrote.
    """
    loop = asyncio.get_running_loop()
    settled = asyncio.Event()
    timer: asyncio.TimerHandle | None = None

    def on_output(_text: str) -> None:
        nonlocal timer
        if timer is not None:
            timer.cancel()
        timer = loop.call_later(quiet, settled.set)

    remove = session.add_output_listener(on_output)
    remove_exit = session.add_exit_callback(lambda _code: settled.set())
    try:
        async with asyncio.timeout(timeout):
            await settled.wait()
    except TimeoutError:
        return False
    finally:
        remove()
        remove_exit()
        if timer is not None:
            timer.cancel()
    return session.alive
