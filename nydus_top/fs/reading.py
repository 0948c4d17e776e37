"""Reading a file from disk that may be hostile: never blocking, regular files only, size-capped.

Every file nydus-top reads from disk (lists, csv, metadata, range lists, configuration) goes
through :func:`read_regular`: it opens with ``O_NONBLOCK`` (a FIFO or a device planted where a
file should be cannot hang us), checks with ``fstat`` on the open file that it is a regular
file, and reads at most *limit* bytes. Sidecar files beside a list are opened with
``O_NOFOLLOW`` (a symlink planted there is refused, not followed); a path the operator typed may
be a symlink.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from nydus_top.fs import trust

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}


class ReadError(Exception):
    """A file that cannot or must not be read; the message is one line naming it."""


class ReadMissing(ReadError):
    """The file does not exist."""


def kind(mode: int) -> str:
    """What a file of *mode* is, for a message: "a FIFO", "a directory", ..."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_regular(path: str | os.PathLike[str], *, limit: int, follow: bool = True,
                 trusted: bool = False) -> bytes:
    """The contents of regular file *path*, at most *limit* bytes.

    Raises ReadMissing when it does not exist, ReadError (one line naming *path*) when it is not
    a regular file (a FIFO, a device, a directory; a symlink when not *follow*), is larger than
    *limit* bytes, or cannot be read. *trusted* (for a configuration): the file and every
    directory above it must be trusted (see nydus_top.fs.trust); it is resolved first and then
    opened without following a symlink, so what is checked is what is read.
    """
    shown = os.fspath(path)
    if trusted:
        path = os.path.realpath(path)
        follow = False
    fd = _open(path, shown, follow)
    try:
        if trusted:
            _check_trusted(fd, os.fspath(path), shown)
        return _read_fd(fd, shown, limit)
    finally:
        os.close(fd)


def regular_chunks(path: str | os.PathLike[str], *, limit: int, follow: bool = True,
                   chunk: int = 1 << 20) -> Iterator[bytes]:
    """The contents of regular file *path* a *chunk* at a time (a huge file is never held
    whole), checked as :func:`read_regular` checks it; its errors come from the first ``next``,
    or from a later one when the file grows beyond *limit* while it is read."""
    shown = os.fspath(path)
    fd = _open(path, shown, follow)
    try:
        _check_fd(fd, shown, limit)
        size = 0
        while True:
            try:
                data = os.read(fd, min(limit + 1 - size, chunk))
            except OSError as err:
                raise ReadError(f"cannot read {shown}: {err.strerror or err}") from None
            if not data:
                return
            size += len(data)
            if size > limit:  # grew since the fstat
                raise ReadError(f"{shown}: larger than {limit} bytes, not read")
            yield data
    finally:
        os.close(fd)


def _open(path: str | os.PathLike[str], shown: str, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags)
    except FileNotFoundError as err:
        raise ReadMissing(f"cannot read {shown}: {err.strerror or err}") from None
    except OSError as err:
        if err.errno == errno.ELOOP and not follow:
            raise ReadError(f"{shown} is a symlink: not read") from None
        raise ReadError(f"cannot read {shown}: {err.strerror or err}") from None


def _check_trusted(fd: int, real: str, shown: str) -> None:
    try:
        trust.check_info(os.fstat(fd), real, readonly=bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY))
        trust.check_parents(real)
    except trust.UntrustedError as err:
        raise ReadError(f"{shown}: refused: {err}") from None


def _check_fd(fd: int, shown: str, limit: int) -> os.stat_result:
    """*fd*'s fstat, when it is a regular file of at most *limit* bytes; else ReadError."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ReadError(f"{shown} is {kind(info.st_mode)}, not a regular file: not read")
    if info.st_size > limit:
        raise ReadError(f"{shown}: larger than {limit} bytes, not read")
    return info


def _read_fd(fd: int, shown: str, limit: int) -> bytes:
    info = _check_fd(fd, shown, limit)
    chunks = []
    size = 0
    try:
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, max(info.st_size - size, 0) + (1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise ReadError(f"cannot read {shown}: {err.strerror or err}") from None
    if size > limit:  # grew since the fstat
        raise ReadError(f"{shown}: larger than {limit} bytes, not read")
    return b"".join(chunks)


def is_regular(path: Path) -> bool:
    """Whether *path* is a regular file, not following a symlink at its end."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
