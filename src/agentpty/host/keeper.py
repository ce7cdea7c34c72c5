"""The keeper: a tiny per-session process, forked from the host's zygote, parent of the agent.

It makes itself a child subreaper, so every process the agent starts (``nohup``
jobs, ``setsid`` and double-forked daemons included) stays its descendant
until reaped: "the session's processes" are the keeper's descendants (and its
cgroup's members, where there is one). It forks the agent on the PTY slave,
reports the agent's pid, reaps everything, and exits, with the agent's exit
code, once no descendant is left. If the host dies, the keeper gets SIGTERM
(``PR_SET_PDEATHSIG``), kills its whole tree and exits: no agent outlives its host.
"""

from __future__ import annotations

# Only small modules: the zygote imports this module, and every page of
# the zygote a keeper writes to becomes the keeper's own. For the same reason
# the keeper calls ``_signal`` (the C module) with plain ints: ``signal``'s
# wrappers turn numbers into ``Signals`` enum members and back, and the enum
# machinery they touch cost each keeper ~250 KiB of private memory (measured).
import ctypes
import fcntl
import gc
import os
import struct
import termios

from agentpty.host.agent_signals import reset_for_exec

#: Not ``typing.TYPE_CHECKING``: importing typing costs the zygote pages.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # _signal has no type stubs; signal's say the same
    from mmap import mmap
else:
    import _signal

__all__ = [
    "PID_RECORD",
    "decode_request",
    "encode_request",
    "exit_code_of",
    "prctl",
    "run_keeper",
]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
#: What the keeper and the agent write on the status pipe: a tag and an int.
PID_RECORD = struct.Struct(">ci")

_libc: ctypes.CDLL | None = None


def prctl(option: int, value: int) -> None:
    """``prctl(2)`` with one argument; raises ``OSError`` on failure."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def exit_code_of(status: int) -> int:
    """Shell convention: a process killed by signal N exits with 128 + N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def encode_request(argv: list[str], cwd: str, env: dict[str, str], cgroup: str | None) -> bytes:
    """A spawn request: NUL-separated cwd, cgroup, argv count, argv, env entries."""
    fields = [cwd, cgroup or "", str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    if any("\0" in field for field in fields):
        raise ValueError("argv, cwd and environment cannot contain NUL characters")
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def decode_request(data: bytes) -> tuple[list[str], str, dict[str, str], str | None]:
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    cwd, cgroup, count = fields[0], fields[1], int(fields[2])
    argv = fields[3 : 3 + count]
    env = dict(entry.split("=", 1) for entry in fields[3 + count :] if "=" in entry)
    return argv, cwd, env, cgroup or None


def run_keeper(request: mmap, size: int, fds: list[int], *, parent: int) -> None:
    """Run as the keeper, in a process just forked by ``parent`` (the zygote), for the
    spawn request in ``request[:size]`` with ``fds`` = [slave, status, exit]: fork the
    agent, reap everything, exit. Never returns.

    The request is decoded only in the agent's process, which exec's (and so
    drops every page it wrote): decoding it here cost the keeper ~250 KiB.

    ``status`` is the write end of a pipe: the keeper writes ``b"P"`` + the
    agent's pid, the agent ``b"E"`` + errno if it cannot exec (or the request
    is bad); EOF means the agent exec'd (or died). On ``exit`` the keeper
    writes ``b"L"`` + the agent's exit code when it reaped the agent, and
    ``b"X"`` + the same code when no descendant is left; EOF means the keeper
    is gone (without ``X``: it was killed).
    """
    global _request, _request_size
    _request, _request_size = request, size
    try:  # pragma: no cover - runs in the keeper
        _keeper(parent, fds)
    finally:
        # Only an error ends up here (the keeper leaves with os._exit): typically
        # EPIPE on a pipe whose reader, the host, died a moment before this
        # keeper's SIGTERM came. Nothing of the session may outlive its keeper.
        _host_died(0, None)


#: The keeper's spawn request (a view and its length), for ``_host_died``.
_request: mmap | None = None
_request_size = 0


def _host_died(signum: int, frame: object) -> None:  # pragma: no cover - in the keeper
    cgroup = None
    if _request is not None:
        # Not contextlib.suppress: importing contextlib would cost the zygote pages.
        try:  # noqa: SIM105
            cgroup = decode_request(bytes(_request[:_request_size]))[3]
        except (ValueError, IndexError):
            pass  # a bad request started no agent; the tree is still swept below
    _kill_tree(os.getpid(), cgroup)
    os._exit(128 + _signal.SIGKILL)


def _keeper(parent: int, fds: list[int]) -> None:  # pragma: no cover - runs in the keeper
    gc.disable()
    # Every object and type touched from here on costs the keeper a page: plain
    # ints and C calls only (no closures, sets, sorted or zip; measured).
    slave, status, exit_pipe = fds
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.signal(_signal.SIGTERM, _host_died)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_PDEATHSIG, _signal.SIGTERM)
    if os.getppid() != parent:  # the host died before the line above
        os._exit(1)
    # Received descriptors are inheritable: the agent must keep none but its terminal.
    os.set_inheritable(status, False)
    os.set_inheritable(exit_pipe, False)
    # Nothing of the host's (its sockets, other sessions' PTYs) stays open here.
    low, mid, high = slave, status, exit_pipe
    if low > mid:
        low, mid = mid, low
    if mid > high:
        mid, high = high, mid
    if low > mid:
        low, mid = mid, low
    os.closerange(3, low)
    os.closerange(low + 1, mid)
    os.closerange(mid + 1, high)
    os.closerange(high + 1, 65536)
    agent = os.fork()
    if agent == 0:
        _agent(slave, status)
    os.close(slave)
    os.write(status, PID_RECORD.pack(b"P", agent))
    os.close(status)
    code = 1
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break  # no descendant left: the session is over
        if pid == agent:
            code = exit_code_of(wait_status)
            os.write(exit_pipe, PID_RECORD.pack(b"L", code))
    os.write(exit_pipe, PID_RECORD.pack(b"X", code))
    os._exit(code)


def _kill_tree(root: int, cgroup: str | None) -> None:  # pragma: no cover - in the keeper
    """SIGKILL the cgroup and every descendant of ``root`` (the host's containment module,
    without its imports), until a pass finds nobody.
    """
    if cgroup is not None:
        try:
            with open(f"{cgroup}/cgroup.kill", "w") as handle:
                handle.write("1")
        except OSError:
            pass
    for _ in range(1000):
        stack, found = [root], 0
        while stack:
            parent = stack.pop()
            children: list[int] = []
            try:
                for task in os.listdir(f"/proc/{parent}/task"):
                    with open(f"/proc/{parent}/task/{task}/children") as handle:
                        children += [int(pid) for pid in handle.read().split()]
            except OSError:
                pass
            for child in children:
                try:
                    with open(f"/proc/{child}/stat", "rb") as handle:
                        stat = handle.read()
                    if stat[stat.rfind(b")") + 2 :][:1] != b"Z":
                        os.kill(child, _signal.SIGKILL)
                        found += 1
                except OSError:
                    pass
                stack.append(child)
        if not found:
            return


def _agent(slave: int, status: int) -> None:  # pragma: no cover - the agent before exec
    try:
        try:
            assert _request is not None
            argv, cwd, env, cgroup = decode_request(bytes(_request[:_request_size]))
        except (ValueError, IndexError, UnicodeDecodeError):
            os.write(status, PID_RECORD.pack(b"E", 22))  # EINVAL: the host sent a bad request
            os._exit(127)
        reset_for_exec()
        if cgroup is not None:
            with open(f"{cgroup}/cgroup.procs", "w") as handle:
                handle.write(str(os.getpid()))
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(status, PID_RECORD.pack(b"E", exc.errno or 0))
    os._exit(127)
