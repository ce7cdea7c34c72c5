"""The zygote: a small, fresh Python process that forks the keepers.

A keeper forked from the busy host would share its pages only until the host
writes to them: every page the host dirties afterwards is private to the
keeper too (2.5 MiB each after a second, measured, and growing with the
host's age). The zygote is exec'd (``python -S``, no site-packages, no
asyncio, no logging: it imports ``keeper`` and small C modules only) and
then sits still in ``recvmsg``, so a keeper forked from it owns little more
than the pages it writes itself. Each page the zygote writes after a fork
becomes the earlier keepers' own, so per request it only receives (into one
private ``mmap`` buffer), forks and replies; the request is decoded in the
agent's process, whose pages ``exec`` discards. It ignores SIGCHLD (the
kernel reaps keepers) and dies with the host (``PR_SET_PDEATHSIG``); keepers
die with it and take their trees with them.

Requests are NUL-separated fields (cwd, cgroup, argv count, argv, env
entries) with the PTY slave and two pipes as ``SCM_RIGHTS``; the reply is
the keeper's pid, or minus an errno.
"""

from __future__ import annotations

import _socket
import gc
import mmap
import os
import signal
import struct
import sys

from agentpty.host.keeper import PR_SET_PDEATHSIG, encode_request, prctl, run_keeper

#: Not ``typing.TYPE_CHECKING``: importing typing costs the zygote pages.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["Zygote", "main"]

PID = struct.Struct(">i")
#: A spawn request holds the agent's whole environment.
MAX_REQUEST = 4 * 1024 * 1024
FD = struct.Struct("i")
#: sys.argv of ``python -S -c BOOT <fd> <host pid> <path of the agentpty package's parent>``.
BOOT = "import sys; sys.path.insert(0, sys.argv[3]); from agentpty.host.zygote import main; main()"


class Zygote:
    """The host's handle on its zygote: ``spawn`` forks a keeper there."""

    def __init__(self) -> None:
        import socket  # the host's side may import it; the zygote's may not

        import agentpty

        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (self._sock, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_REQUEST)
        child.set_inheritable(True)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(agentpty.__file__)))
        argv = [sys.executable, "-S", "-c", BOOT, str(child.fileno()), str(os.getpid())]
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - becomes the zygote
            try:
                os.execv(sys.executable, [*argv, package_parent])
            finally:
                os._exit(127)
        child.close()
        self._send_fds: Any = socket.send_fds

    def spawn(self, spec: dict[str, Any], fds: list[int], cgroup: Path | None) -> int:
        """Fork a keeper for ``spec`` (argv, cwd, env) with ``fds`` = [slave, status, exit].

        Blocks for the time of one fork. Raises ``OSError`` if the zygote is gone
        or the fork failed, ``ValueError`` for a NUL in argv, cwd or environment.
        """
        request = encode_request(
            list(spec["argv"]),
            str(spec["cwd"]),
            dict(spec.get("env") or {}),
            None if cgroup is None else str(cgroup),
        )
        self._send_fds(self._sock, [request], fds)
        reply = self._sock.recv(PID.size)
        if len(reply) != PID.size:
            raise OSError("the host's zygote is gone")
        pid: int = PID.unpack(reply)[0]
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        return pid


def _receive(sock: Any, buffer: Any) -> tuple[int, list[int]]:  # pragma: no cover - zygote
    size, ancillary, _, _ = sock.recvmsg_into([buffer], _socket.CMSG_SPACE(3 * FD.size))
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % FD.size
            fds += [FD.unpack_from(data, offset)[0] for offset in range(0, usable, FD.size)]
    return size, fds


def main() -> None:  # pragma: no cover - runs in the zygote
    """Fork a keeper per request, doing as little as possible here in between.

    Every page the zygote writes after a keeper was forked becomes that
    keeper's own copy, so the request is not decoded here (the agent's
    process decodes it, see ``keeper.run_keeper``), and it arrives in a
    buffer mapped once (``mmap``: its pages exist only as far as requests
    have reached), not in a new bytes object each time.
    """
    sock = _socket.socket(fileno=int(sys.argv[1]))
    me = os.getpid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(sys.argv[2]):
        return  # the host died before the line above
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    # Private: a keeper keeps the request it was forked with while the next arrives.
    buffer = mmap.mmap(-1, MAX_REQUEST, flags=mmap.MAP_PRIVATE)
    gc.freeze()
    gc.disable()
    while True:
        size, fds = _receive(sock, buffer)
        if not size:
            return  # the host closed its end: it is gone
        if len(fds) != 3:
            reply = -22  # EINVAL: the host sent a bad request
        else:
            try:
                reply = os.fork()
            except OSError as exc:
                reply = -(exc.errno or 1)
            if reply == 0:
                run_keeper(buffer, size, fds, parent=me)
        for fd in fds:
            os.close(fd)
        sock.send(PID.pack(reply))
