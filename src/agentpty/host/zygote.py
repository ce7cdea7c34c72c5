"""The zygote: a small process forked from the host before it imports asyncio, that forks
the keepers.

A keeper forked from the busy host would share its pages only until the host
writes to them; every page the host dirties afterwards counts as private to
the keeper (2.5 MiB each after a second, measured; growing with the host's
age). The zygote sits still in ``recvmsg`` so its pages stay as they were:
a keeper forked from it owns only the few pages it writes itself. The
zygote ignores SIGCHLD (its keepers are reaped by the kernel) and dies with
the host (``PR_SET_PDEATHSIG``); keepers die with the zygote and take their
trees with them.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import struct
from pathlib import Path
from typing import Any

from agentpty.host.keeper import PR_SET_PDEATHSIG, prctl, spawn_keeper

__all__ = ["Zygote"]

PID = struct.Struct(">i")
#: A spawn request holds the agent's whole environment.
MAX_REQUEST = 4 * 1024 * 1024


class Zygote:
    """The host's handle on its zygote: ``spawn`` forks a keeper there."""

    def __init__(self) -> None:
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (self._sock, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_REQUEST)
        host = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the zygote
            try:
                self._sock.close()
                _serve(child, host)
            finally:
                os._exit(0)
        child.close()

    def spawn(self, spec: dict[str, Any], fds: list[int], cgroup: Path | None) -> int:
        """Fork a keeper for ``spec`` (argv, cwd, env) with ``fds`` = [slave, status, exit].

        Blocks for the time of one fork. Raises ``OSError`` if the zygote is gone.
        """
        request = json.dumps(
            {
                "argv": spec["argv"],
                "cwd": spec["cwd"],
                "env": spec.get("env") or {},
                "cgroup": None if cgroup is None else str(cgroup),
            }
        ).encode()
        socket.send_fds(self._sock, [request], fds)
        reply = self._sock.recv(PID.size)
        if len(reply) != PID.size:
            raise OSError("the host's zygote is gone")
        pid: int = PID.unpack(reply)[0]
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        return pid


def _serve(sock: socket.socket, host: int) -> None:  # pragma: no cover - runs in the zygote
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != host:
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    gc.freeze()
    gc.disable()
    while True:
        message, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 3)
        if not message:
            return  # the host closed its end: it is gone
        try:
            request = json.loads(message)
            slave, status, exit_pipe = fds
            # Received descriptors are inheritable: the agent must not keep these.
            for fd in fds:
                os.set_inheritable(fd, False)
            cgroup = request["cgroup"]
            pid = spawn_keeper(
                request["argv"],
                cwd=request["cwd"],
                env=request["env"],
                slave=slave,
                status=status,
                exit_pipe=exit_pipe,
                cgroup=None if cgroup is None else Path(cgroup),
            )
        except OSError as exc:
            pid = -(exc.errno or 1)
        except (ValueError, KeyError):
            pid = -22  # EINVAL: the host sent a bad request
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(PID.pack(pid))
