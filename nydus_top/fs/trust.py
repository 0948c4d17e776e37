"""Whether a file or directory is safe to take orders from (a configuration) or to write in as
root (persist_dir), as ssh and sudo decide it.

Trusted: owned by root or by the user running us (our effective uid), not writable by group or
others, and so is every directory above it up to ``/`` (a directory above may be writable by
others if it is sticky, like ``/tmp``: nobody else can then rename or replace what is ours in
it). Anyone who could change such a file could make root run their program.
"""

from __future__ import annotations

import os
import stat


class UntrustedError(Exception):
    """A file or directory others could change; the message is one line saying why."""


def owners() -> str:
    euid = os.geteuid()
    return "root" if euid == 0 else f"root or uid {euid}"


def check_info(info: os.stat_result, shown: str, *, above: bool = False, readonly: bool = False) -> None:
    """Raise UntrustedError unless *info* (of *shown*) is owned by root or us and not writable by
    group or others (for a directory *above* what we use, writable is fine when sticky; on a
    *readonly* mount, such as a ConfigMap's, no one can write whatever the mode says)."""
    what = f"its directory {shown}" if above else shown
    if info.st_uid not in (0, os.geteuid()):
        raise UntrustedError(f"{what} is owned by uid {info.st_uid}, not {owners()}")
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not readonly
    if writable and not (above and stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
        raise UntrustedError(f"{what} is writable by group or others "
                             f"(mode {stat.S_IMODE(info.st_mode):04o})")


def check_parents(path: str) -> None:
    """Raise UntrustedError unless every directory above the resolved *path* is trusted."""
    directory = os.path.dirname(path)
    while True:
        try:
            info = os.lstat(directory)
            readonly = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        except OSError as err:
            raise UntrustedError(f"cannot check {directory}: {err.strerror or err}") from None
        check_info(info, directory, above=True, readonly=readonly)
        if directory == "/":
            return
        directory = os.path.dirname(directory)


def check_dir(path: str | os.PathLike[str]) -> None:
    """Raise UntrustedError unless directory *path* (resolved) is trusted, and everything above
    it. Missing components are fine (we create them, as root, 0755): the nearest existing one
    above is checked as a directory above."""
    real = os.path.realpath(path)
    probe = real
    while True:
        try:
            info = os.lstat(probe)
        except (FileNotFoundError, NotADirectoryError):  # a save will say why it cannot make it
            probe = os.path.dirname(probe)
            continue
        except OSError as err:
            raise UntrustedError(f"cannot check {probe}: {err.strerror or err}") from None
        break
    check_info(info, probe, above=probe != real)
    if probe != "/":
        check_parents(probe)
