"""One recorder per persist_dir: ``<persist_dir>/.nydus-top/record.lock``, ``flock``'ed for the
recorder's life.

Two recorders saving into one directory (two ``record`` processes, or two plugins named
nydus-top on one runtime, both with the default directory) would record every start twice. The
second one to start finds the lock held and refuses; the kernel drops the lock when the holder
exits, however it exits, so a stale file never blocks the next recorder. A lock that cannot be
taken at all (the directory cannot be made, a symlink in the way) is one line, and recording goes
on unlocked: its saves fail there just the same, each with its line. The file is opened
without following a symlink (nor is ``.nydus-top``) and must be a regular file: persist_dir is
shared with the node.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from nydus_top.fs.confined import ConfinedError, describe, open_existing_dir

OURS = ".nydus-top"  # our directory in persist_dir (the run store's too)
LOCK_NAME = "record.lock"
_PID_BYTES = 32  # what is read of the holder's pid: the file is hostile input


class RecorderLockError(Exception):
    """The lock cannot be taken (one line): the directory cannot be made, a symlink is in the way."""


class RecorderLockHeld(RecorderLockError):
    """Another recorder holds the lock (one line)."""


def lock_persist_dir(persist_dir: Path) -> int:
    """Take the recorder lock of *persist_dir* (made if missing); the fd to keep open while
    recording. Raises RecorderLockError."""
    doing = f"lock {persist_dir / OURS / LOCK_NAME}"
    try:
        os.makedirs(persist_dir / OURS, exist_ok=True)  # persist_dir as the operator named it ...
        dfd = open_existing_dir(persist_dir / OURS, persist_dir, doing)  # ... ours never through a symlink
    except ConfinedError as err:
        raise RecorderLockError(str(err)) from None
    except OSError as err:
        raise RecorderLockError(f"cannot {doing}: {describe(err)}") from None
    if dfd is None:
        raise RecorderLockError(f"cannot {doing}: {persist_dir / OURS} vanished")
    try:
        fd = _open_lock_file(dfd, doing)
    finally:
        os.close(dfd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(fd)
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RecorderLockHeld(f"another recorder{holder} already records into {persist_dir}: "
                                   "refusing to record every start twice") from None
        raise RecorderLockError(f"cannot {doing}: {describe(err)}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _open_lock_file(dfd: int, doing: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(LOCK_NAME, flags, 0o644, dir_fd=dfd)
    except OSError as err:
        why = "a symlink (never followed)" if err.errno == errno.ELOOP else describe(err)
        raise RecorderLockError(f"cannot {doing}: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecorderLockError(f"cannot {doing}: not a regular file")
    return fd


def _holder(fd: int) -> str:
    """`` (pid N)`` from the holder's file, or "" when it holds no number."""
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


class RecorderLock:
    """The lock of the persist_dir being recorded into (none until :meth:`move`), moved along when
    it changes."""

    def __init__(self) -> None:
        self.fd = -1
        self.persist_dir: Path | None = None

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def move(self, persist_dir: Path) -> None:
        """Hold *persist_dir*'s lock instead. On RecorderLockHeld the old one stays held; on another
        RecorderLockError none is held any more (recording goes there, unlocked)."""
        if persist_dir == self.persist_dir:
            return
        try:
            fd = lock_persist_dir(persist_dir)
        except RecorderLockHeld:
            raise
        except RecorderLockError:
            self.close()
            raise
        self.close()
        self.fd, self.persist_dir = fd, persist_dir

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.persist_dir = -1, None
