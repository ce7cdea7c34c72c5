"""TerminalSession on real PTYs: signals, resize, exit, slow clients, idle policy.

Every test runs twice: with the process as the test's child (in-process) and
in a real session host daemon (hosted).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentpty.domain.models import SessionState
from agentpty.host.client import HostClient
from agentpty.terminal.hosted import hosted_factory
from agentpty.terminal.manager import SessionManager
from agentpty.terminal.process import ProcessFactory, local_process
from agentpty.terminal.session import SessionLimits, Subscriber, TerminalSession
from tests.helpers import eventually, stop_host, timeout, wait_foreground

ENV = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "PS1": "$ "}


async def read_until(subscriber: Subscriber, text: str, wait: float = 30) -> str:
    seen = ""
    async with asyncio.timeout(timeout(wait)):
        while text not in seen:
            frame = await subscriber.get()
            assert frame.kind == "output", f"process ended before {text!r}: {seen!r}"
            seen += frame.text
    return seen


NewSession = Callable[..., TerminalSession]


@pytest.fixture(params=["in-process", "hosted"])
async def new_session(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NewSession]:
    """Builds sessions whose process is in-process or in a session host (one per test)."""
    factory: ProcessFactory = local_process
    client: HostClient | None = None
    if request.param == "hosted":
        client = HostClient(tmp_path / "run")
        factory = hosted_factory(client)

    def new(argv: list[str], **kwargs: Any) -> TerminalSession:
        return TerminalSession("k", argv, cwd="/", env=ENV, process_factory=factory, **kwargs)

    try:
        yield new
    finally:
        if client is not None:
            client.close()
            await stop_host(tmp_path / "run")


async def test_child_sees_resize(new_session: NewSession) -> None:
    """After resize the child's terminal reports the new size (stty size)."""
    session = new_session(["/bin/sh"])
    await session.launch()
    subscriber, _ = session.subscribe()
    session.resize(33, 121)
    session.send_input("stty size\n")
    await read_until(subscriber, "33 121")
    await session.stop()


async def test_sigint_interrupts_sleep(new_session: NewSession) -> None:
    """SIGINT to the group interrupts a foreground sleep; the shell lives on."""
    session = new_session(["/bin/sh"])
    await session.launch()
    subscriber, _ = session.subscribe()
    session.send_input("sleep 100\n")
    assert session.pid is not None
    await wait_foreground(session.pid, "sleep")
    session.send_signal("SIGINT")
    # Type only at the new prompt, as a person would: dash re-raises a job's
    # SIGINT on itself, and a line typed ahead may be read and then dropped
    # by that interrupt (a loaded machine made it happen 1 run in 3).
    await read_until(subscriber, "\r\n$ ")
    session.send_input("echo after-$?\n")
    await read_until(subscriber, "after-130")
    assert session.alive
    await session.stop()


async def test_agent_starts_with_default_signals(new_session: NewSession) -> None:
    """SIGINT ignored and SIGQUIT blocked in the server do not reach the agent.

    As when the server runs in the background of a script: without the
    reset, Ctrl-C would never interrupt the agent's commands.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGQUIT})
    try:
        session = new_session(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
        subscriber, _ = session.subscribe()
        await session.launch()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    output = ""
    async with asyncio.timeout(timeout(30)):
        while (frame := await subscriber.get()).kind == "output":
            output += frame.text
    status = dict(line.split(":\t") for line in output.split("\r\n") if ":\t" in line)
    assert not int(status["SigIgn"], 16) & (1 << (signal.SIGINT - 1)), output
    assert int(status["SigBlk"], 16) == 0, output


async def test_exit_code_and_closed_frame(new_session: NewSession) -> None:
    """A process that exits closes every subscriber with its exit code."""
    session = new_session(["/bin/sh", "-c", "echo bye; exit 7"])
    subscriber, _ = session.subscribe()
    await session.launch()
    await read_until(subscriber, "bye")
    frame = await subscriber.get()
    assert frame.kind == "closed" and frame.exit_code == 7
    assert session.state == SessionState.EXITED


async def test_eof_ends_cat(new_session: NewSession) -> None:
    """EOF sends the Ctrl-D byte: cat at the start of a line exits."""
    session = new_session(["cat"])
    await session.launch()
    session.send_signal("EOF")
    assert await asyncio.wait_for(session.wait(), timeout(10)) == 0


async def test_stalled_subscriber_is_resynced_without_slowing_others(
    new_session: NewSession,
) -> None:
    """A subscriber that never reads gets a snapshot later; a reading one sees all output.

    The flood is typed into a running shell (a hosted session's first output
    is relayed by the host, which does not hold it), and the hold limit is
    generous: on a loaded machine the reading test may be scheduled late, and
    the agent must then wait for it rather than drop its backlog.
    """
    limits = SessionLimits(subscriber_backlog=1024 * 1024, hold_limit=10)
    session = new_session(["/bin/sh"], limits=limits)
    stalled, _ = session.subscribe()
    fast, _ = session.subscribe()
    await session.launch()
    await read_until(fast, "$ ")
    session.send_input("seq 1 400000; echo END-OF-$((6*7))\r")
    seen = await read_until(fast, "END-OF-42", wait=60)
    assert "\n399999\r\n" in seen
    assert fast.resyncs == 0
    assert stalled.resyncs >= 1
    frame = await stalled.get()
    assert frame.kind == "output" and "END-OF-42" in frame.text  # a fresh snapshot
    session.send_input("exit\r")
    assert await asyncio.wait_for(session.wait(), timeout(10)) == 0


async def test_slow_subscriber_gets_every_byte(new_session: NewSession) -> None:
    """A client slower than the agent, but reading: the PTY waits for it, nothing is dropped.

    The flood is typed into a running shell: in the first moments of a hosted
    session the host still relays the output itself, and that is not held.
    """
    # A generous hold limit: on a loaded machine the reader may be scheduled late.
    limits = SessionLimits(hold_limit=10)
    session = new_session(["/bin/sh"], limits=limits)
    slow, _ = session.subscribe()
    await session.launch()
    await read_until(slow, "$ ")
    session.send_input("seq 1 150000; echo END-$((6*7))\r")
    seen = ""
    async with asyncio.timeout(timeout(60)):
        while "END-42" not in seen:
            frame = await slow.get()
            assert frame.kind == "output"
            seen += frame.text
            await asyncio.sleep(0.002)  # the slow client: ~1 MB of output takes it ~0.1 s more
    assert slow.resyncs == 0
    body = seen[seen.index("\n1\r\n") : seen.index("END-42")]
    numbers = [int(n) for n in body.split()]
    assert numbers == list(range(1, 150001))
    session.send_input("exit\r")
    assert await asyncio.wait_for(session.wait(), timeout(10)) == 0


async def test_a_stalled_sole_subscriber_holds_the_agent_only_briefly(
    new_session: NewSession,
) -> None:
    """With its only client stalled, the agent still runs to its end; the client resyncs."""
    limits = SessionLimits(subscriber_backlog=64 * 1024, hold_limit=0.2)
    session = new_session(["/bin/sh", "-c", "seq 1 100000; echo END-OF-SEQ"], limits=limits)
    stalled, _ = session.subscribe()
    await session.launch()
    assert await asyncio.wait_for(session.wait(), timeout(30)) == 0
    assert stalled.resyncs >= 1
    frame = await stalled.get()
    assert frame.kind == "output" and "END-OF-SEQ" in frame.text  # a fresh snapshot


async def test_idle_session_without_clients_is_stopped(new_session: NewSession) -> None:
    """No client and no output for the idle timeout: the session stops gracefully."""
    session = new_session(["/bin/sh"], idle_timeout=0.3)
    await session.launch()
    subscriber, _ = session.subscribe()
    session.unsubscribe(subscriber)
    await asyncio.wait_for(session.wait(), timeout(10))
    assert session.stop_reason == "idle"


async def test_attached_session_is_not_idle_stopped(new_session: NewSession) -> None:
    """While a client is attached the idle policy leaves the session alone."""
    session = new_session(["/bin/sh"], idle_timeout=0.2)
    await session.launch()
    subscriber, _ = session.subscribe()
    done, _ = await asyncio.wait({asyncio.ensure_future(session.wait())}, timeout=0.6)
    assert not done and session.alive
    session.unsubscribe(subscriber)
    await asyncio.wait_for(session.wait(), timeout(10))


async def test_stop_escalates_to_sigkill(new_session: NewSession) -> None:
    """A child ignoring SIGTERM and SIGHUP is killed after the grace period."""
    script = (
        "import signal,time;[signal.signal(s,signal.SIG_IGN) for s in (1,15)];"
        "print('armed',flush=True);time.sleep(60)"
    )
    session = new_session([sys.executable, "-c", script], limits=SessionLimits(stop_grace=0.3))
    subscriber, _ = session.subscribe()
    await session.launch()
    await read_until(subscriber, "armed")
    assert await asyncio.wait_for(session.stop(), timeout(10)) == 128 + 9


async def test_manager_starts_one_process_for_concurrent_callers(new_session: NewSession) -> None:
    """Twenty concurrent ensure() calls for one key start exactly one process."""
    manager = SessionManager()
    starts = 0

    async def factory() -> TerminalSession:
        nonlocal starts
        starts += 1
        await asyncio.sleep(0.05)  # a slow start widens the race window
        session = new_session(["/bin/sh"])
        await session.launch()
        return session

    results = await asyncio.gather(*(manager.ensure("p", factory) for _ in range(20)))
    assert starts == 1
    assert len({id(session) for session, _ in results}) == 1
    assert sum(started for _, started in results) == 1
    await manager.shutdown()


async def test_screen_snapshot_shows_earlier_output(new_session: NewSession) -> None:
    """A late subscriber's snapshot holds what was printed before it came."""
    session = new_session(["/bin/sh"])
    await session.launch()
    first, _ = session.subscribe()
    session.send_input("echo snap-$((6*7))\n")
    await read_until(first, "snap-42")
    _, snapshot = session.subscribe()
    assert "snap-42" in snapshot
    assert "snap-42" in session.screen.text()
    await session.stop()


async def test_quiet_screen_model_hibernates_and_wakes_on_output(new_session: NewSession) -> None:
    """After a quiet spell the screen model sleeps; a snapshot still shows the screen, and new
    output wakes it."""
    limits = SessionLimits(screen_hibernate_delay=0.05)
    session = new_session(["/bin/sh"], limits=limits)
    subscriber, _ = session.subscribe()
    await session.launch()
    try:
        session.send_input("printf 'x%.0s' $(seq 1 5000); echo; echo sleepy-$((3*3))\n")
        await read_until(subscriber, "sleepy-9")

        async def asleep() -> bool | None:
            return session.screen.hibernating or None

        await eventually(asleep, wait=timeout(10))
        assert "sleepy-9" in session.snapshot()
        session.send_input("echo awake-$((2*2))\n")
        await read_until(subscriber, "awake-4")
        assert "awake-4" in session.screen.text()
    finally:
        await session.stop()
