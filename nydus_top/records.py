"""Records a trace produces: one per newly seen file, plus explicit overflow markers."""

from __future__ import annotations

from dataclasses import dataclass

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
