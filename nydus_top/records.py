"""The record types of nydus-top, one name per concept.

* :class:`Access`: what a tracer reports the first time a file is accessed;
* :class:`Overflow`: accesses a tracer lost (kernel queue overflow or its own limit);
* :data:`TraceRecord`: either of them, what a tracer batch holds;
* :class:`ListedFile`: one file of a saved list (size and elapsed only when the file said);
* :class:`Listable`: anything a list file can be written from (an Access, a ListedFile, a row
  of the trace model).
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Overflow:
    """Accesses around ``elapsed_us`` were lost: the kernel queue overflowed, or the tracer's
    per-trace limit of distinct files was reached. ``lost`` is the count when known."""

    elapsed_us: int
    lost: int | None = None


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
