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
# the zygote a keeper writes to becomes the keeper's own.
import ctypes
import fcntl
import gc
import os
import signal
import struct
import termios

from agentpty.host.agent_signals import reset_for_exec

#: Not ``typing.TYPE_CHECKING``: importing typing costs the zygote pages.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["PID_RECORD", "exit_code_of", "prctl", "spawn_keeper"]

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


def spawn_keeper(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    slave: int,
    status: int,
    exit_pipe: int,
    cgroup: str | None,
) -> int:
    """Fork the keeper (which forks the agent); return the keeper's pid.

    ``status`` is the write end of a pipe: the keeper writes ``b"P"`` + the
    agent's pid, the agent ``b"E"`` + errno if it cannot exec; EOF means
    the agent exec'd (or died). On ``exit_pipe`` the keeper writes ``b"L"`` +
    the agent's exit code when it reaped the agent, and ``b"X"`` + the same
    code when no descendant is left; EOF means the keeper is gone (without
    ``X``: it was killed).
    """
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:  # pragma: no cover - runs in the keeper
        _keeper(parent, list(argv), cwd, dict(env), slave, status, exit_pipe, cgroup)
    finally:
        os._exit(126)


def _keeper(  # pragma: no cover - runs in the keeper
    parent: int,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    slave: int,
    status: int,
    exit_pipe: int,
    cgroup: str | None,
) -> None:
    gc.disable()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)

    def host_died(signum: int, frame: object) -> None:
        _kill_tree(os.getpid(), cgroup)
        os._exit(128 + signal.SIGKILL)

    signal.signal(signal.SIGTERM, host_died)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the host died before the line above
        os._exit(1)
    # Nothing of the host's (its sockets, other sessions' PTYs) stays open here.
    keep = sorted({slave, status, exit_pipe})
    os.closerange(3, keep[0])
    for low, high in zip(keep, [*keep[1:], 65536], strict=True):
        os.closerange(low + 1, high)
    agent = os.fork()
    if agent == 0:
        _agent(argv, cwd, env, slave, status, cgroup)
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
                        os.kill(child, signal.SIGKILL)
                        found += 1
                except OSError:
                    pass
                stack.append(child)
        if not found:
            return


def _agent(  # pragma: no cover - runs in the agent before exec
    argv: list[str], cwd: str, env: dict[str, str], slave: int, status: int, cgroup: str | None
) -> None:
    try:
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
