"""The record types of nydus-top, one name per concept.

* :class:`Access`: what a tracer reports the first time a file is accessed;
* :class:`Overflow`: accesses a tracer lost, and why (kernel queue overflow, its own limit, a
  path too long to name, ...);
* :data:`TraceRecord`: either of them, what a tracer batch holds;
* :class:`ListedFile`: one file of a saved list (size and elapsed only when the file said);
* :class:`Listable`: anything a list file can be written from (an Access, a ListedFile, a row
  of the trace model);
* :func:`kept_until`: how much of a trace is start-up when it ended at a time (a stamped ready line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

KINDS = ("exec", "open", "read")


@dataclass(frozen=True, slots=True)
class Access:
    """The first access to one file in a trace."""

    seq: int  # order of first access, from 0
    path: str  # absolute path as the container sees it
    size: int  # bytes, at the time of access
    elapsed_us: int  # microseconds since the fanotify mark was placed
    kind: str  # one of KINDS
    pid: int  # host pid of the accessing process
    comm: str  # its command name


# Why an Overflow's files were lost (its ``reason``; the same words on the tracer's wire).
QUEUE = "queue"  # the kernel's event queue overflowed
OPEN = "open"  # the kernel could not open a file for the tracer (EMFILE, a device, ...)
LIMIT = "limit"  # the tracer's limit of distinct files per trace was reached
PATH_TOO_LONG = "path too long"  # the file's path is longer than PATH_MAX: it has no name to list
UNREACHABLE = "unreachable"  # the file has no path from the container's root


@dataclass(frozen=True, slots=True)
class Overflow:
    """Accesses around ``elapsed_us`` were lost, for ``reason`` (one of the words above); ``lost``
    is the count of files when known."""

    elapsed_us: int
    lost: int | None = None
    reason: str = QUEUE


TraceRecord = Access | Overflow


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One file of a loaded list; size and elapsed are None when the file did not say."""

    path: str
    size: int | None = None
    elapsed_us: int | None = None


class Listable(Protocol):
    """Anything with a path, a size and an elapsed time: an Access, a ListedFile, a trace row."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def elapsed_us(self) -> int | None: ...


def kept_until(elapsed_us: Sequence[int], until_us: int) -> int:
    """How many of a trace's first records stay when start-up ended at *until_us*, given their
    times in the order traced: those traced until then, and the tracer's first batch after it. A
    record is timed when the tracer reads it, and a batch's records share that time, so that batch
    may hold reads made before *until_us*: it stays whole (a start-up read is never dropped)."""
    keep = len(elapsed_us)
    while keep and elapsed_us[keep - 1] > until_us:
        keep -= 1
    if keep < len(elapsed_us):
        first_after = elapsed_us[keep]
        while keep < len(elapsed_us) and elapsed_us[keep] == first_after:
            keep += 1
    return keep
