"""Writes and removals as root that stay beneath the directory we were told to write in.

A path under *root* (persist_dir) is reached from *root*'s fd one component at a time with
``O_NOFOLLOW``: a symlink planted anywhere below it refuses the operation in one line instead of
redirecting it. Files are written atomically (a locked temporary file, fsync, rename or link) and
removed by name in a directory fd, never by path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path


class ConfinedError(Exception):
    """A file could not be written or reached beneath its root; the message is one line naming it."""


class ConfinedExistsError(ConfinedError):
    """Writing would replace an existing file and replacing was not asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists")
        self.path = path


def describe(err: OSError) -> str:
    """The one-line reason of *err* (its strerror)."""
    return err.strerror or str(err)


def _open_beneath(root: str, rel: str, doing: str, *, create: bool = True) -> int | None:
    """fd of directory *rel* under *root*, no component of *rel* followed if it is a symlink
    (``O_NOFOLLOW`` from *root*'s fd). With *create*, missing directories are made (``mkdir``
    relative to their parent's fd); without, a missing one gives None. Errors name *doing*."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        if not create:
            return None
        raise ConfinedError(f"cannot {doing}: {describe(err)}") from None
    except OSError as err:
        raise ConfinedError(f"cannot {doing}: {describe(err)}") from None
    shown = root
    for part in [p for p in rel.split("/") if p and p != "."]:
        shown = os.path.join(shown, part)
        try:
            try:
                child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: the open below checks what it is
                child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
        except OSError as err:
            link = err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(fd, part)
            os.close(fd)
            if link:
                raise ConfinedError(f"cannot {doing}: {shown} is a symlink "
                                    f"(never followed under {root})") from None
            raise ConfinedError(f"cannot {doing}: {describe(err)}") from None
        os.close(fd)
        fd = child
    return fd


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_symlink(dfd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir(target: Path, root: Path | None) -> int:
    """fd of *target*'s directory (created as needed): resolved beneath *root* without following
    symlinks, or, without a root (a path the operator typed), as the kernel resolves it."""
    fd = _open_beneath(*_split_under(target.parent, root, f"save {target}"), f"save {target}")
    assert fd is not None  # created as needed
    return fd


def _split_under(directory: Path, root: str | os.PathLike[str] | None, doing: str) -> tuple[str, str]:
    """(root, *directory* relative to it); without a root, (*directory*, "")."""
    where = os.path.abspath(directory)
    if root is None:
        return where, ""
    base = os.path.abspath(root)
    if os.path.commonpath([base, where]) != base:
        raise ConfinedError(f"cannot {doing}: not under {base}")
    return base, os.path.relpath(where, base)


def open_existing_dir(directory: str | os.PathLike[str], root: str | os.PathLike[str], doing: str) -> int | None:
    """fd of *directory* under *root* (persist_dir), reached without following any symlink below
    *root*; None when it does not exist. Raises ConfinedError (one line, "cannot <doing>: ...")
    when a component is a symlink or *directory* is not under *root*. For removing files by
    name relative to it (``os.unlink(name, dir_fd=fd)``), never by path."""
    return _open_beneath(*_split_under(Path(directory), root, doing), doing, create=False)


def within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path | None:
    """*root* if *path* lies under it (lexically), else None: the ``root`` to save *path* with."""
    base, where = os.path.abspath(root), os.path.abspath(path)
    return Path(base) if os.path.commonpath([base, where]) == base and where != base else None


Data = bytes | Iterable[bytes]  # a file's contents, whole or a piece at a time


def write_atomic(files: Sequence[tuple[Path, Data]], *, overwrite: bool = False,
                 root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """Write every (path, data) so that each file is either its old or its complete new version.
    *data* may be an iterable of pieces (a huge file never held whole): the files are written in
    order, each piece as it comes; an error raised while making a piece leaves every old file intact.

    *root* is the directory we were told to write in (persist_dir): every path must lie under
    it, and no directory between *root* and a file is followed if it is a symlink (missing ones
    are created relative to their parent's fd); the save is refused with one line instead.
    Without *root* (a path the operator typed outside it) directories resolve as usual. The
    file itself is never followed: a symlink there is replaced (overwrite) or counts as existing.

    Data goes to a temporary file ``.<name>.nydus-top.<random>.tmp`` in the target's directory, is
    fsynced, then renamed over the target (or hard-linked, which fails if the target exists,
    when *overwrite* is false). Nothing is replaced until every temporary file is complete, so
    a full disk or a permission error leaves all old files intact. Raises ConfinedExistsError or
    ConfinedError (one line).

    A save holds an exclusive ``flock`` on its temporary files; before writing a file it removes
    the temporary files an interrupted save of that same file left (see :func:`remove_stale_temps`).
    Returns one line per file removed so.
    """
    dirs: dict[Path, int] = {}
    temps: list[tuple[int, str, Path]] = []
    removed: list[str] = []
    try:
        for path, _ in files:
            if path.parent not in dirs:
                dirs[path.parent] = _open_dir(path, None if root is None else Path(root))
            removed += [f"removed {path.parent / name}, left by an interrupted save"
                        for name in remove_stale_temps(dirs[path.parent], path.name)]
        if not overwrite:
            for path, _ in files:
                if exists_in(dirs[path.parent], path.name):
                    raise ConfinedExistsError(path)
        for path, data in files:
            dfd = dirs[path.parent]
            try:
                tmp, fd = _create_temp(dfd, path.name)
            except OSError as err:
                raise ConfinedError(f"cannot save {path}: {describe(err)}") from None
            temps.append((dfd, tmp, path))
            try:
                with os.fdopen(fd, "wb") as out:
                    for piece in (data,) if isinstance(data, bytes) else data:
                        out.write(piece)
                    out.flush()
                    os.fchmod(out.fileno(), 0o644)
                    os.fsync(out.fileno())
            except OSError as err:
                raise ConfinedError(f"cannot save {path}: {describe(err)}") from None
        for dfd, tmp, path in temps:
            try:
                if overwrite:
                    os.rename(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
                else:
                    os.link(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise ConfinedExistsError(path) from None
            except OSError as err:
                raise ConfinedError(f"cannot save {path}: {describe(err)}") from None
        for directory, dfd in dirs.items():
            try:
                os.fsync(dfd)
            except OSError as err:
                raise ConfinedError(f"cannot save in {directory}: {describe(err)}") from None
    finally:
        for dfd, tmp, _ in temps:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
        for dfd in dirs.values():
            os.close(dfd)
    return tuple(removed)


def exists_in(dfd: int, name: str) -> bool:
    """Whether directory *dfd* has an entry *name* (a symlink counts, never followed)."""
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _create_temp(dfd: int, name: str) -> tuple[str, int]:
    """(name, fd) of a new private temporary file for *name* in directory *dfd*, locked."""
    for _ in range(100):
        tmp = f".{name}{TEMP_MARK}{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        return tmp, fd
    raise FileExistsError(errno.EEXIST, "no free temporary name")


TEMP_MARK = ".nydus-top."  # in every temporary name we make: .<name>.nydus-top.<16 hex>.tmp
STALE_TEMP_AGE = 10.0  # seconds without a write: far more than a save takes between create and lock


def temp_name_of(name: str | re.Pattern[str]) -> re.Pattern[str]:
    """The temporary names a save of *name* (or of every name *name* matches) makes, and no
    other program's."""
    target = name.pattern if isinstance(name, re.Pattern) else re.escape(name)
    return re.compile(r"\.(?:" + target + ")" + re.escape(TEMP_MARK) + r"[0-9a-f]{16}\.tmp")


def remove_stale_temps(dfd: int, name: str | re.Pattern[str], *, now: float | None = None) -> list[str]:
    """Remove what an interrupted save (kill -9, power loss) of *name* left in directory *dfd*;
    the names removed.

    Only what is provably ours: ``.<name>.nydus-top.<16 hex>.tmp`` for this very *name* (or
    names of ours a pattern matches, e.g. runs; a marker no other program uses), a regular
    file (never a symlink), not locked (a save in progress, in any process, holds a lock on its
    temporary file until it ends) and not modified for STALE_TEMP_AGE seconds (the moment
    between creating and locking a temporary file).
    Temporary files of earlier versions (``.<name>.<8 characters>.tmp``, a shape other programs
    use too) are left alone.
    """
    now = time.time() if now is None else now
    ours = temp_name_of(name)
    removed = []
    for entry in os.listdir(dfd):
        if not ours.fullmatch(entry):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError:
            continue  # a symlink (ELOOP), gone meanwhile, ...: not ours to touch
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < STALE_TEMP_AGE:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a save in progress
            same = os.stat(entry, dir_fd=dfd, follow_symlinks=False)
            if (same.st_dev, same.st_ino) == (info.st_dev, info.st_ino):
                os.unlink(entry, dir_fd=dfd)
                removed.append(entry)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
