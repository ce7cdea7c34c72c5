"""The data dir's safety at start: usable, private (0700), its secrets 0600.

The data dir holds the token, the database (every conversation id, every
milestone's context) and the agent's hook settings; anyone who can read
them can drive the agents. ``prepare_data_dir`` runs before anything is
written there and fails with one line naming the path and the problem;
``secure_files`` runs once the server has created its files and fixes
their modes, warning about a token file others could read.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import stat
from pathlib import Path

__all__ = ["DataDirError", "prepare_data_dir", "raise_open_files_limit", "secure_files"]

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
#: Files the server keeps in the data dir (SQLite adds -wal and -shm beside its file).
SECRET_FILES = (
    "token",
    "claude-settings.json",
    "agentpty.db",
    "agentpty.db-wal",
    "agentpty.db-shm",
)


class DataDirError(Exception):
    """The data dir cannot be used; the message is one line saying why and what to do."""


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing, else check it is ours and writable and make it 0700."""
    hint = "fix it, or choose another with --data-dir / AGENTPTY_DATA_DIR"
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise DataDirError(f"data dir {path}: cannot create it ({exc.strerror}); {hint}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise DataDirError(f"data dir {path} is not a directory; {hint}")
    if info.st_uid != os.geteuid():
        raise DataDirError(
            f"data dir {path} belongs to user id {info.st_uid}, not to you ({os.geteuid()}); {hint}"
        )
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        try:
            path.chmod(DIR_MODE)
        except OSError as exc:
            raise DataDirError(
                f"data dir {path}: cannot make it private ({exc.strerror}); {hint}"
            ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"data dir {path} is not writable; {hint}")
    probe = path / f".agentpty-write-test-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        # A read-only file system passes os.access for the owner.
        problem = "read-only file system" if exc.errno == errno.EROFS else exc.strerror
        raise DataDirError(f"data dir {path} is not writable ({problem}); {hint}") from exc


def secure_files(path: Path) -> None:
    """Make the server's files in ``path`` 0600; warn if the token was readable by others."""
    for name in SECRET_FILES:
        file = path / name
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode == FILE_MODE:
            continue
        if name == "token" and mode & 0o077:
            log.warning(
                "token file %s was readable by other users (mode %o); made it 0600. "
                "If they could read it, replace it: delete the file and restart",
                file,
                mode,
            )
        try:
            file.chmod(FILE_MODE)
        except OSError as exc:
            log.warning("cannot make %s private (%s)", file, exc.strerror)


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (within the hard limit).

    Returns the soft limit now in force. Every connection and every agent's
    PTY takes descriptors; the common default soft limit of 1024 is below a
    modest connection cap.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass  # keep the old limit; the connection cap still applies
    return soft
