"""Host-side range tracer: which bytes of the image's files a container reads.

Runs beside the file tracer (:mod:`nydus_top.tracing.tracer`), started by the same warm helper, in the
host mount namespace (:mod:`nydus_top.tracing.range_session`). The file tracer still gives the list and
its order; this one adds each file's ranges. Typical use::

    ranges = start_ranges(pool, pid, container_id=cid)
    ranges.wait_ready(1.0)          # RangesUnavailable("ranges unavailable: why") if it cannot
    ...                             # the container runs
    ranges.stop()
    book = ranges.book              # path -> RangeSet | WHOLE
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nydus_top.lists.ranges import RangeBook
from nydus_top.tracing.tracer import Trace, TracerError, TracerPool


class RangesUnavailable(TracerError):
    """Ranges cannot be recorded here; str() is one line starting ``ranges unavailable:``."""


def unavailable(err: BaseException) -> str:
    """``ranges unavailable: <why>`` for any error starting or arming a range tracer (said once)."""
    text = str(err)
    return text if text.startswith("ranges unavailable") else f"ranges unavailable: {text}"


@dataclass(frozen=True, slots=True)
class FileSeen:
    file: int
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class RangeRead:
    file: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class WholeFile:
    file: int
    why: str  # "read", "chunks" (its touched chunks cover it), "mapped" (an ELF file), "bound"
    # (too many ranges), "unknown"


@dataclass(frozen=True, slots=True)
class MappedRange:
    path: str  # pages the container had mapped (nydus_top.tracing.mapped)
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Unobserved:
    path: str  # a mapped file whose pages are not followed ("": none could be); it counts whole
    why: str


@dataclass(frozen=True, slots=True)
class RangeNotice:
    text: str  # "limit": too many files; "backlog": our reader was too slow, ranges stopped


@dataclass(frozen=True, slots=True)
class RangeEnd:
    marks_left: int
    events: int  # pre-access events answered
    foreign: int  # of them, from processes outside the container


RangeRecord = FileSeen | RangeRead | WholeFile | RangeNotice | RangeEnd | MappedRange | Unobserved


def parse_range_line(line: bytes | str) -> RangeRecord:
    """One JSON line of the range tracer -> record. Raises ValueError on anything else."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("range line is not an object")
    try:
        if "mapped" in obj:
            return MappedRange(str(obj["mapped"]), int(obj["off"]), int(obj["len"]))
        if "unobserved" in obj:
            return Unobserved(str(obj["unobserved"]), str(obj["why"]))
        if "off" in obj:
            return RangeRead(int(obj["file"]), int(obj["off"]), int(obj["len"]))
        if "path" in obj:
            return FileSeen(int(obj["file"]), str(obj["path"]), int(obj["size"]))
        if "whole" in obj:
            return WholeFile(int(obj["file"]), str(obj["whole"]))
        if "notice" in obj:
            return RangeNotice(str(obj["notice"]))
        return RangeEnd(int(obj["marks_left"]), int(obj["events"]), int(obj["foreign"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"bad range line: {e}") from None


MAX_UNOBSERVED = 64  # unobserved files named per trace (each counts whole regardless)


class RangeCollector:
    """Folds range records into a :class:`RangeBook` (thread-safe: the trace's reader thread
    adds, anyone reads)."""

    def __init__(self) -> None:
        self.book = RangeBook()
        self.end: RangeEnd | None = None
        self.notices: list[str] = []
        self.whole_why: dict[str, str] = {}  # path -> why it counts whole ("read", "mapped", ...)
        self.mapped = RangeBook()  # the pages mapped, apart (also in the book; WHOLE once unobserved)
        self.unobserved: dict[str, str] = {}  # mapped files whose pages were not followed -> why
        self.changed = 0  # bumps on every batch that changed the book
        self._paths: dict[int, str] = {}
        self._lock = threading.Lock()
        self._followers: list[Callable[[RangeBook], None]] = []

    def follow(self, callback: Callable[[RangeBook], None]) -> None:
        """Call ``callback(copy of the book)`` now and after every batch (on the reader thread)."""
        with self._lock:
            self._followers.append(callback)
            callback(self._copy())

    def add(self, batch: list[RangeRecord]) -> None:
        with self._lock:
            for rec in batch:
                if type(rec) is RangeRead:
                    path = self._paths.get(rec.file)
                    if path is not None:
                        self.book.add(path, rec.offset, rec.offset + rec.length)
                elif type(rec) is FileSeen:
                    if rec.path:  # empty: not reachable from our root; its reads stay unknown
                        self._paths[rec.file] = rec.path
                elif type(rec) is WholeFile:
                    path = self._paths.get(rec.file)
                    if path is not None:
                        self.book.mark_whole(path)
                        self.whole_why[path] = rec.why
                elif type(rec) is MappedRange:
                    self.book.add(rec.path, rec.offset, rec.offset + rec.length)
                    if self.book.get(rec.path) is not None:  # a file counted whole has no pages apart
                        self.mapped.add(rec.path, rec.offset, rec.offset + rec.length)
                elif type(rec) is Unobserved:
                    self._unobserved(rec)
                elif type(rec) is RangeNotice:
                    self.notices.append(rec.text)
                elif isinstance(rec, RangeEnd):
                    self.end = rec
            self.changed += 1
            for callback in self._followers:
                callback(self._copy())

    def _unobserved(self, rec: Unobserved) -> None:
        """A file whose pages are not followed counts whole; a sample that failed ("") makes
        every file seen mapped so far whole (pages it would have seen may be missing)."""
        if len(self.unobserved) < MAX_UNOBSERVED:
            self.unobserved[rec.path] = rec.why
        for path in [rec.path] if rec.path else [p for p, _ in self.mapped.items()]:
            self.book.mark_whole(path)
            self.mapped.mark_whole(path)
            self.whole_why[path] = "unobserved"

    def mapped_bytes(self) -> int:
        """Bytes of pages seen mapped (the union over the trace, exact)."""
        with self._lock:
            return sum(r.bytes for _, r in self.mapped.items() if r is not None)

    def snapshot(self) -> RangeBook:
        """A copy of the book as it is now."""
        with self._lock:
            return self._copy()

    def _copy(self) -> RangeBook:
        out = RangeBook()
        out.merge(self.book)
        return out


class RangeTrace:
    """A running range trace (see :func:`start_ranges`)."""

    def __init__(self, trace: Trace, collector: RangeCollector) -> None:
        self._trace = trace
        self.collector = collector

    @property
    def book(self) -> RangeBook:
        return self.collector.book

    @property
    def pid(self) -> int:
        return self._trace.pid

    @property
    def tracer_pid(self) -> int | None:
        return self._trace.tracer_pid

    @property
    def error(self) -> str | None:
        return self._trace.error

    def wait_ready(self, timeout: float) -> None:
        """Block until every lower directory is marked. RangesUnavailable if it cannot be."""
        try:
            self._trace.wait_ready(timeout)
        except TracerError as e:
            raise RangesUnavailable(str(e)) from None

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the marks, answer what is queued, wait for the last lines."""
        self._trace.stop(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        return self._trace.wait(timeout)


def start_ranges(pool: TracerPool, pid: int, *, container_id: str | None = None,
                 on_batch: Callable[[list[RangeRecord]], None] | None = None,
                 small_set: bool = False, granularity: int = 0, mapped: bool = True) -> RangeTrace:
    """Start recording the ranges the container of host ``pid`` reads; returns at once.

    ``on_batch`` (reader thread) sees the records after they are folded into the book. With
    ``granularity`` > 0 a file goes quiet (counts whole) once the chunks it touched cover it.
    """
    collector = RangeCollector()

    def deliver(batch: list[Any]) -> None:  # the reader's batches, parsed by parse_range_line
        collector.add(batch)
        if on_batch is not None:
            on_batch(batch)

    msg = {"pid": int(pid), "cid": container_id, "small": bool(small_set), "ranges": True,
           "granularity": int(granularity), "mapped": bool(mapped)}
    trace = Trace(pid, *pool.submit(msg), deliver, parse=parse_range_line)
    return RangeTrace(trace, collector)
