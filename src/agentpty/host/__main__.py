"""``python -m agentpty.host RUN_DIR [RING_SIZE [cgroups|no-cgroups [LOOP]]]``: the session host.

Starts the host of one data dir, detached.

The process the server starts forks the daemon and exits once the daemon
listens (status 0), or is found already running, so the server never has a
child to wait for and the daemon is nobody's child but init's (or a subreaper's).
Stdout and stderr (the log) are whatever the server opened: ``run/host.log``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from agentpty.eventloop import event_loop_factory
from agentpty.host.zygote import Zygote

__all__ = ["main"]

DEFAULT_RING = 1024 * 1024


def _lock(run_dir: Path) -> int | None:
    """Hold ``host.lock`` for the daemon's life (one host per data dir); None if taken."""
    fd = os.open(run_dir / "host.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _listen(run_dir: Path) -> socket.socket:
    # Relative to the run dir: a Unix socket path is limited to 107 bytes.
    os.chdir(run_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink("host.sock")  # stale: its host died (we hold the lock)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind("host.sock")
    finally:
        os.umask(old)
    os.chmod("host.sock", 0o600)
    sock.listen(64)
    return sock


async def _serve(sock: socket.socket, zygote: Zygote, ring_size: int, cgroups: bool) -> None:
    import asyncio

    from agentpty.host.daemon import Connection, Host

    host = Host(ring_size, zygote, cgroups=cgroups)
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(lambda: Connection(host), sock=sock)
    # SIGTERM ends the host cleanly: every session's tree is killed, cgroups removed.
    loop.add_signal_handler(signal.SIGTERM, host.finish)
    try:
        await host.done
        logging.info("host %d: no session and no client left: exiting", os.getpid())
    finally:
        server.close()
        host.kill_all()
        if host.cgroups is not None:
            host.cgroups.remove()


def main() -> int:
    run_dir = Path(sys.argv[1]).resolve()
    ring_size = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_RING
    cgroups = sys.argv[3] != "no-cgroups" if len(sys.argv) > 3 else True
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        answer = os.read(ready_r, 64)
        return 0 if answer in (b"ok", b"running") else 1
    os.close(ready_r)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s host: %(message)s", stream=sys.stderr
    )
    lock = _lock(run_dir)
    if lock is None:
        os.write(ready_w, b"running")
        return 0
    try:
        sock = _listen(run_dir)
    except OSError as exc:
        logging.error("cannot listen on %s/host.sock: %s", run_dir, exc)
        os.write(ready_w, b"failed")
        return 1
    os.write(ready_w, b"ok")
    os.close(ready_w)
    # Started before asyncio and the daemon are imported: nothing of theirs to copy.
    zygote = Zygote()
    import asyncio

    # The server's event_loop setting: on uvloop a keystroke's echo through the
    # host comes back ~60 µs sooner (median of 10 interleaved bench runs each:
    # 0.44 vs 0.50 ms).
    event_loop = sys.argv[4] if len(sys.argv) > 4 else "auto"
    with asyncio.Runner(loop_factory=event_loop_factory(event_loop)) as runner:
        runner.run(_serve(sock, zygote, ring_size, cgroups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
