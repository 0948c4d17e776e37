"""Host-side range tracer: which bytes of the image's files a container reads.

Runs beside the file tracer (:mod:`nydus_top.tracing.tracer`), started by the same warm helper, in the
host mount namespace (:mod:`nydus_top.tracing.range_session`). The file tracer still gives the list and
its order; this one adds each file's ranges. Typical use::

    ranges = start_ranges(pool, pid, container_id=cid)
    ranges.wait_ready(1.0)          # RangesUnavailable("ranges unavailable: why") if it cannot
    ...                             # the container runs
    ranges.stop()
    book = ranges.book              # path -> RangeSet | WHOLE

Readers of the image's files wait for the range tracer's answers. Two bounds keep that short:

* a watchdog thread here (``native/range_watchdog.c``: another process than the tracer, not its
  process group, no Python lock) ends the range tracer when an event has waited more than
  ``WATCHDOG_MS``; that is one log line, the trace's ``error`` says so and the file trace goes on;
* ranges are recorded for a start-up window (``window_s``, ``[ranges] window``) only: then the
  marks go (a ``window`` notice) and the range tracer ends.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nydus_top._native import ffi, lib
from nydus_top.lists.compact import Budget
from nydus_top.lists.ranges import RangeBook, RangeSet
from nydus_top.text import counted
from nydus_top.tracing.tracer import Trace, TracerError, TracerPool

log = logging.getLogger(__name__)

WATCHDOG_MS = 100  # an event of the range tracer unanswered this long ends it (readers wait at most ~this)
WINDOW_S = 30  # seconds ranges are recorded after arming, by default ([ranges] window)
# What the collector's book holds, counted against a memory budget (measured: ~90 bytes a range,
# two Python ints in two lists; ~300 bytes a file besides its path, with its RangeSet and entries).
RANGE_BYTES = 96
FILE_BYTES = 320


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
class CachedPages:
    file: int  # the runs of a file's cached pages ([start, end) bytes: pages, the last one clipped
    ranges: tuple[tuple[int, int], ...]  # to the size) when it was first seen (``first``), or at the end
    first: bool


@dataclass(frozen=True, slots=True)
class CacheMissed:
    files: int  # files seen whose page cache could not be followed (NT_CACHE_FILES, runs, ...)


@dataclass(frozen=True, slots=True)
class RangeNotice:
    text: str  # "limit": too many files; "backlog": our reader was too slow, ranges stopped;
    # "window": the start-up window ended, ranges stopped; "memory": the collector's budget is
    # spent (said by the collector itself), later files and ranges count whole


@dataclass(frozen=True, slots=True)
class RangeEnd:
    marks_left: int
    events: int  # pre-access events answered
    foreign: int  # of them, from processes outside the container


RangeRecord = (FileSeen | RangeRead | WholeFile | RangeNotice | RangeEnd | MappedRange | Unobserved | CachedPages
               | CacheMissed)


def parse_range_line(line: bytes | str) -> RangeRecord:
    """One JSON line of the range tracer -> record. Raises ValueError on anything else."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("range line is not an object")
    try:
        if "mapped" in obj:
            return MappedRange(str(obj["mapped"]), int(obj["off"]), int(obj["len"]))
        for key in ("cache0", "cache1"):
            if key in obj:
                return CachedPages(int(obj["file"]), tuple((int(a), int(b)) for a, b in obj[key]), key == "cache0")
        if "cache_missed" in obj:
            return CacheMissed(int(obj["cache_missed"]))
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
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"bad range line: {e}") from None


PAGE = os.sysconf("SC_PAGE_SIZE")


def minus(now: RangeSet, before: RangeSet) -> RangeSet:
    """The bytes of ``now`` not in ``before``."""
    out = RangeSet()
    old = list(before)
    i = 0
    for start, end in now:
        while i < len(old) and old[i][1] <= start:
            i += 1
        j = i
        while start < end and j < len(old) and old[j][0] < end:
            if old[j][0] > start:
                out.add(start, old[j][0])
            start = max(start, old[j][1])
            j += 1
        if start < end:
            out.add(start, end)
    return out


def _apart(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    """Is [start, end) apart from every interval [starts[i], ends[i]) (sorted, disjoint): no
    overlap, not adjacent?"""
    i = bisect_left(ends, start)
    return i == len(starts) or starts[i] > end


MAX_UNOBSERVED = 64  # unobserved files named per trace (each counts whole regardless)


class RangeCollector:
    """Folds range records into a :class:`RangeBook` (thread-safe: the trace's reader thread
    adds, anyone reads).

    With a ``budget`` what the book holds (RANGE_BYTES a range, FILE_BYTES and its path a file)
    is taken from it: past it a file's ranges give way to whole (``whole_why`` "memory"), a new
    file is not kept (no data: whole in a range list), and one ``memory`` notice says so.
    :meth:`release` gives it all back."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.book = RangeBook()
        self.budget = budget
        self.charged = 0  # bytes taken from the budget
        self.end: RangeEnd | None = None
        self.notices: list[str] = []
        self.whole_why: dict[str, str] = {}  # path -> why it counts whole ("read", "mapped", ...)
        self.mapped = RangeBook()  # the pages mapped, apart (also in the book; WHOLE once unobserved)
        self.unobserved: dict[str, str] = {}  # mapped files whose pages were not followed -> why
        self.cached = RangeBook()  # pages only the page cache saw (also in the book; see _cached_pages)
        self.cache_unobserved = ""  # why some files' page cache was not followed ("": all was)
        self._cache_first: dict[int, tuple[RangeSet, int]] = {}  # file -> its cached pages when first seen, size
        self.changed = 0  # bumps on every batch that changed the book
        self._paths: dict[int, str] = {}
        self._lock = threading.Lock()
        self._followers: list[Callable[[RangeBook], None]] = []

    def follow(self, callback: Callable[[RangeBook], None]) -> None:
        """Call ``callback(copy of the book)`` now and after every batch (on the reader thread)."""
        with self._lock:
            self._followers.append(callback)
            callback(self._copy())

    def _take(self, n: int) -> bool:
        if self.budget is None:
            return True
        if self.budget.take(n):
            self.charged += n
            return True
        if "memory" not in self.notices:
            self.notices.append("memory")
        return False

    def _give(self, n: int) -> None:
        if self.budget is not None and n:
            self.budget.give_back(n)
            self.charged -= n

    def _whole(self, path: str, why: str) -> None:
        ranges = self.book.get(path)
        if ranges is not None:
            self._give(len(ranges) * RANGE_BYTES)
        self.book.mark_whole(path)
        self.whole_why[path] = why

    def _read(self, path: str, start: int, end: int) -> None:
        before = self.book.get(path)
        if before is None and path in self.book:
            return  # whole already
        held = 0 if before is None else len(before)
        self.book.add(path, start, end)
        after = self.book.get(path)
        grown = (0 if after is None else len(after)) - held
        if grown > 0 and not self._take(grown * RANGE_BYTES):
            self._give(held * RANGE_BYTES)
            self.book.mark_whole(path)
            self.whole_why[path] = "memory"
        elif grown < 0:
            self._give(-grown * RANGE_BYTES)

    def add(self, batch: list[RangeRecord]) -> None:
        with self._lock:
            for rec in batch:
                if type(rec) is RangeRead:
                    path = self._paths.get(rec.file)
                    if path is not None:
                        self._read(path, rec.offset, rec.offset + rec.length)
                elif type(rec) is FileSeen:
                    # empty: not reachable from our root; its reads stay unknown (so do those of
                    # a file past the budget)
                    if rec.path and self._take(FILE_BYTES + len(rec.path)):
                        self._paths[rec.file] = rec.path
                elif type(rec) is WholeFile:
                    path = self._paths.get(rec.file)
                    if path is not None:
                        self._whole(path, rec.why)
                elif type(rec) is MappedRange:
                    self._read(rec.path, rec.offset, rec.offset + rec.length)
                    if self.book.get(rec.path) is not None:  # a file counted whole has no pages apart
                        self.mapped.add(rec.path, rec.offset, rec.offset + rec.length)
                elif type(rec) is Unobserved:
                    self._unobserved(rec)
                elif type(rec) is CachedPages:
                    self._cache(rec)
                elif type(rec) is CacheMissed:
                    self.cache_unobserved = (f"the page cache of {counted(rec.files, 'file')} seen was not followed "
                                             f"(past {lib.NT_CACHE_FILES} files, too fragmented, or no cachestat)")
                elif type(rec) is RangeNotice:
                    self.notices.append(rec.text)
                elif isinstance(rec, RangeEnd):
                    self.end = rec
            self.changed += 1
            for callback in self._followers:
                callback(self._copy())

    def release(self) -> None:
        """Give back everything taken from the budget (the book stays readable)."""
        with self._lock:
            self._give(self.charged)
            self.budget = None

    def _unobserved(self, rec: Unobserved) -> None:
        """A file whose pages are not followed counts whole; a sample that failed ("") makes
        every file seen mapped so far whole (pages it would have seen may be missing)."""
        if len(self.unobserved) < MAX_UNOBSERVED:
            self.unobserved[rec.path] = rec.why
        for path in [rec.path] if rec.path else [p for p, _ in self.mapped.items()]:
            self._whole(path, "unobserved")
            self.mapped.mark_whole(path)

    def _cache(self, rec: CachedPages) -> None:
        """A file's cached pages when first seen are kept (within the memory budget); at the end,
        the pages cached since go to :meth:`_cached_pages`."""
        if rec.first:
            path = self._paths.get(rec.file)
            if path is not None and self._take(RANGE_BYTES * (len(rec.ranges) + 1)):
                self._cache_first[rec.file] = (RangeSet(rec.ranges), len(rec.ranges) + 1)
            return
        first = self._cache_first.pop(rec.file, None)
        path = self._paths.get(rec.file)
        if first is None or path is None:
            return
        self._give(RANGE_BYTES * first[1])
        self._cached_pages(path, minus(RangeSet(rec.ranges), first[0]))

    def _cached_pages(self, path: str, new: RangeSet) -> None:
        """Pages cached while the trace ran join a file's ranges when some of them lie apart from
        everything recorded for it (a mapping no sample saw: its faults make no event); pages that
        only touch what was recorded are taken for the kernel's readahead around it, and pages from
        the file's start for our tracer's own look at it (its ELF check). Files without range data
        or counted whole gain nothing (they count whole)."""
        known = self.book.get(path)
        if known is None or not new:
            return
        pages = list(RangeSet((s - s % PAGE, e + -e % PAGE) for s, e in known))
        starts, ends = [s for s, _ in pages], [e for _, e in pages]
        if not any(s > 0 and _apart(starts, ends, s, e) for s, e in new):
            return
        for start, end in minus(new, known):
            self._read(path, start, end)
            if self.book.get(path) is None:
                return  # whole now (the memory budget)
            self.cached.add(path, start, end)

    def cached_bytes(self) -> int:
        """Bytes only the page cache saw (see :meth:`_cached_pages`; may hold other readers')."""
        with self._lock:
            return sum(r.bytes for _, r in self.cached.items() if r is not None)

    def mapped_bytes(self) -> int:
        """Bytes of pages seen mapped (the union over the trace, exact)."""
        with self._lock:
            return sum(r.bytes for _, r in self.mapped.items() if r is not None)

    def unobserved_now(self) -> list[tuple[str, str]]:
        """(path, why) of the mapped files not observed so far (a copy)."""
        with self._lock:
            return list(self.unobserved.items())

    def snapshot(self) -> RangeBook:
        """A copy of the book as it is now."""
        with self._lock:
            return self._copy()

    def _copy(self) -> RangeBook:
        out = RangeBook()
        out.merge(self.book)
        return out


class RangeSlots:
    """At most ``most`` range tracers at once (each may hold ~160 MiB: see the README's memory
    arithmetic); thread-safe. A trace past it records files only."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.running = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.running >= self.most:
                return False
            self.running += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.running -= 1


class _Watchdog:
    """The native watchdog of one range trace (owns its end of the socket)."""

    def __init__(self, sock: socket.socket, bound_ms: int) -> None:
        err = ffi.new("int *")
        fd = sock.detach()
        self._w = lib.nt_watchdog_start(fd, bound_ms, err)
        if self._w == ffi.NULL:
            os.close(fd)
            raise TracerError(f"ranges unavailable: watchdog: {os.strerror(err[0])}")
        self.bound_ms = bound_ms
        self._lock = threading.Lock()

    def stop(self) -> int:
        """Stop the thread; returns the wait that made it fire (0: it did not)."""
        with self._lock:
            if self._w == ffi.NULL:
                return 0
            fired = int(lib.nt_watchdog_fired(self._w))
            lib.nt_watchdog_stop(self._w)
            self._w = ffi.NULL
            return fired


class RangeTrace:
    """A running range trace (see :func:`start_ranges`)."""

    def __init__(self, trace: Trace, collector: RangeCollector, watchdog: _Watchdog | None = None,
                 slots: RangeSlots | None = None) -> None:
        self._trace = trace
        self.collector = collector
        self._watchdog = watchdog
        self._slots = slots  # its slot is given back once the tracer has exited
        self.stalled = ""  # why the watchdog ended the range tracer, once it has

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
        return self.stalled or self._trace.error

    def _ended(self) -> None:
        """The tracer has exited (reader thread): stop the watchdog; if it ended the tracer, say so."""
        if self._slots is not None:
            self._slots.give_back()
            self._slots = None
        if self._watchdog is None:
            return
        fired = self._watchdog.stop()
        if fired:
            self.stalled = (f"ranges stopped: a read of the image waited {fired} ms for the range tracer "
                            f"(bound {self._watchdog.bound_ms} ms); it was ended, the trace goes on without ranges")
            log.warning("range tracer of pid %d: %s", self.pid, self.stalled)

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
                 small_set: bool = False, granularity: int = 0, window_s: float = WINDOW_S,
                 watchdog_ms: int = WATCHDOG_MS, budget: Budget | None = None,
                 slots: RangeSlots | None = None, mapped: bool = True) -> RangeTrace:
    """Start recording the ranges the container of host ``pid`` reads (and the pages its
    processes map, with *mapped*), for ``window_s`` seconds at most; returns at once.

    ``on_batch`` (reader thread) sees the records after they are folded into the book. With
    ``granularity`` > 0 a file goes quiet (counts whole) once the chunks it touched cover it.
    What the ranges take here counts against ``budget`` (see :class:`RangeCollector`). With
    ``slots`` it takes one, or raises RangesUnavailable when all are taken.
    """
    if slots is not None and not slots.take():
        many = f"{slots.most} range tracer{'s are' if slots.most != 1 else ' is'}"
        raise RangesUnavailable(f"ranges unavailable: {many} running, the most at once (MAX_RANGE_TRACES)")
    try:
        return _start(pool, pid, container_id, on_batch, small_set, granularity, window_s, watchdog_ms, budget,
                      slots, mapped)
    except BaseException:
        if slots is not None:
            slots.give_back()
        raise


def _start(pool: TracerPool, pid: int, container_id: str | None,
           on_batch: Callable[[list[RangeRecord]], None] | None, small_set: bool, granularity: int,
           window_s: float, watchdog_ms: int, budget: Budget | None, slots: RangeSlots | None,
           mapped: bool) -> RangeTrace:
    collector = RangeCollector(budget)

    def deliver(batch: list[Any]) -> None:  # the reader's batches, parsed by parse_range_line
        collector.add(batch)
        if on_batch is not None:
            on_batch(batch)

    msg = {"pid": int(pid), "cid": container_id, "small": bool(small_set), "ranges": True,
           "granularity": int(granularity), "window_ms": max(int(window_s * 1000), 0),
           "mapped": bool(mapped)}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        watchdog = _Watchdog(ours, watchdog_ms)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    box: list[RangeTrace] = []
    made = threading.Event()  # the tracer may end before the RangeTrace exists

    def ended() -> None:
        made.wait()
        box[0]._ended()

    try:
        with theirs:
            fds = pool.submit(msg, [theirs.fileno()])
    except BaseException:
        watchdog.stop()
        raise
    trace = Trace(pid, *fds, deliver, parse=parse_range_line, on_end=ended)
    box.append(RangeTrace(trace, collector, watchdog, slots))
    made.set()
    return box[0]
