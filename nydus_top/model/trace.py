"""One trace as the app sees it: target, state, inbox, curated list and live counters.

The tracer side (its own thread) calls ``started``/``records``/``drop_after``/``ended``;
``records`` blocks when the inbox is full, which is the backpressure: the tracer's reader stops
reading and the kernel's fanotify queue (unlimited for these traces) grows instead, so nothing is
lost and nydus-top's own buffer stays at INBOX_BATCHES batches. The UI side (the session's
``Workspace``) calls ``drain()`` on a timer (about 10 times a second) and the screens
repaint once per drain, however many events arrived. ``drop_after`` goes through the inbox too,
so it applies after the batches queued before it.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.node import Container, Pod
from nydus_top.model.records import Access, Overflow
from nydus_top.model.tracelist import TraceList

if TYPE_CHECKING:
    from nydus_top.workspace.backend import ArmSpec

INBOX_BATCHES = 256  # batches buffered between the tracer thread and the UI
RATE_WINDOW = 60  # seconds of accesses/s history kept for the sparkline
DRAIN_BUDGET_S = 0.015  # UI time per tick spent moving records into the list


class TraceState(enum.Enum):
    ARMED = "armed"  # waiting for the next start of a matching container
    RUNNING = "tracing"
    STOPPED = "stopped"
    FAILED = "failed"
    LOADED = "loaded"  # a list opened from disk, no tracer behind it


@dataclass(frozen=True, slots=True)
class Target:
    """What a trace follows: a container by name in a pod, or any container of an image."""

    label: str  # shown to the operator, e.g. "default/web/nginx" or "image nginx:1.25"
    image: str  # image reference used for the default save path
    container_id: str = ""  # set once attached
    path: str = ""  # the file a loaded list came from


@dataclass(frozen=True, slots=True)
class _DropAfter:
    """Start-up ended at ``until_us``: what was traced later goes (see ``TraceRun.drop_after``)."""

    until_us: int


@dataclass(frozen=True, slots=True)
class LineCut:
    """Start-up ended at a stamped ready line at ``until_us`` (the trace's elapsed time), and
    ``files`` traced after it left the list (``TraceRun.drop_after``); the screens say it."""

    until_us: int
    files: int


def identity_of(container: Container, pod: Pod | None) -> ListMeta:
    """A container's identity as a list's metadata: full image reference, names, pod."""
    image = container.image
    return ListMeta(image=image, digest=image.partition("@")[2], container=container.name,
                    container_id=container.id, pod=f"{pod.namespace}/{pod.name}" if pod is not None else "")


@dataclass(eq=False)
class TraceRun:
    """A live (or loaded) trace and its curated list.

    Compared and hashed by identity; ``id`` is the stable number the workspace gives it
    (``nydus_top.workspace.traces``), ``arm`` what an armed run waits for (None for attached and loaded).
    """

    target: Target
    state: TraceState = TraceState.RUNNING
    id: int = 0
    arm: ArmSpec | None = None
    error: str = ""  # why it failed or ended, shown next to the state
    possibly_incomplete: bool = False  # armed, but the mark came after the container started
    from_start: bool = False  # armed for a start (False: attached to a running container)
    items: TraceList = field(default_factory=TraceList)
    meta: ListMeta | None = None  # the list's identity: read from disk, or remembered from the container
    files: int = 0  # distinct files seen (before curation)
    bytes: int = 0
    rates: deque[int] = field(default_factory=lambda: deque([0] * RATE_WINDOW, maxlen=RATE_WINDOW))
    paused: bool = False  # UI freeze: records queue up in the inbox until resumed
    stopper: Callable[[], None] | None = None  # set by the backend once the tracer runs
    ranges_error: str = ""  # "ranges unavailable: why", said once, when the range tracer cannot run
    line_cut: LineCut | None = None  # set at the drain that applied drop_after: said once, by the screen
    _ranges: RangeBook | None = None  # a book handed over, not yet in the list
    _ranges_from: Any = None  # a live range_tracer.RangeCollector, copied at the UI's pace
    _ranges_seen: int = -1  # its change count at the last copy
    _inbox: queue.Queue[tuple[Access | Overflow, ...] | _DropAfter] = field(
        default_factory=lambda: queue.Queue(INBOX_BATCHES))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _second: int = 0  # elapsed second the last rate bucket belongs to
    _anchor: float | None = None  # clock time of elapsed second 0, set by the first advance() while running
    _closed: bool = False

    # -- tracer side (any thread) -------------------------------------------------------------

    def started(self, container_id: str, *, possibly_incomplete: bool = False,
                identity: ListMeta | None = None) -> None:
        """The tracer runs on ``container_id``; ``possibly_incomplete`` when its mark was late.
        ``identity``: the container's image, name and pod as its start reported them (see
        :func:`identity_of`), so a start that is gone from the node model by the time it is kept
        still names them."""
        with self._lock:
            self.target = replace(self.target, container_id=container_id)
            if identity is not None:
                self.meta = identity
            self.possibly_incomplete = possibly_incomplete
            self.state = TraceState.RUNNING

    def records(self, batch: Sequence[Access | Overflow]) -> None:
        """Queue one batch; blocks while the UI is behind (backpressure), drops once closed."""
        if batch:
            self._put(tuple(batch))

    def drop_after(self, until_us: int) -> None:
        """Start-up ended at *until_us* (a stamped ready line, in the trace's elapsed time): the
        files traced after it leave the list but for the tracer's first batch after it, as the
        recorder trims its list (``CompactList.drop_after``); a cut the metadata names then ends at
        the last file kept. Applied at the UI's next drain, after the batches queued before, which
        sets ``line_cut`` (when, how many files left) for the screens to say."""
        self._put(_DropAfter(until_us))

    def _put(self, item: tuple[Access | Overflow, ...] | _DropAfter) -> None:
        while not self._closed:
            try:
                self._inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def ranges_update(self, book: RangeBook) -> None:
        """The range tracer's book as it is now (a copy the run may keep); the UI takes the
        latest one at its next drain."""
        with self._lock:
            self._ranges = book

    def ranges_from(self, collector: Any) -> None:
        """Follow a live range collector (``changed`` count, ``snapshot()``): the UI copies its
        book at its next drain after a change, never more often than it drains."""
        self._ranges_from = collector

    def mapped_bytes(self) -> int:
        """Bytes of mapped pages the followed range collector has seen (0 without one)."""
        collector = self._ranges_from
        return int(collector.mapped_bytes()) if collector is not None else 0

    def cached_pages(self) -> tuple[int, str]:
        """(bytes only the page cache saw, why it could not be looked at or ""), from the followed
        range collector (see RangeCollector._cached_pages)."""
        collector = self._ranges_from
        return (int(collector.cached_bytes()), str(collector.cache_unobserved)) if collector is not None else (0, "")

    def mapped_unobserved(self) -> tuple[tuple[str, str], ...]:
        """(path, why) of the mapped files the followed range collector could not observe (they
        count whole; path "" is every file seen mapped)."""
        collector = self._ranges_from
        return tuple(collector.unobserved_now()) if collector is not None else ()

    def ranges_unavailable(self, why: str) -> None:
        with self._lock:
            self.ranges_error = why

    def close(self) -> None:
        """The app is going away: never block the tracer side again."""
        self._closed = True

    def ended(self, error: str = "", reason: str = "") -> None:
        """The trace is over: failed with ``error``, or stopped (``reason`` e.g. "target-exited")."""
        with self._lock:
            self.error = error or reason
            self.state = TraceState.FAILED if error else TraceState.STOPPED

    # -- UI side ----------------------------------------------------------------------------

    def drain(self, budget_s: float = DRAIN_BUDGET_S) -> int:
        """Move queued batches into the list for at most ``budget_s``; the rest waits for the next
        tick (and, once the inbox is full, the tracer waits). Returns the number of batches
        taken (0 when paused or idle), so the caller knows whether to repaint."""
        if self.paused:
            return 0
        taken = 0
        with self._lock:
            book, self._ranges = self._ranges, None
        source = self._ranges_from
        if source is not None and source.changed != self._ranges_seen:
            self._ranges_seen = source.changed
            book = source.snapshot()
        if book is not None:
            self.items.set_traced_ranges(book)
            taken += 1
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _DropAfter):
                self._drop_after(item.until_us)
            else:
                self._ingest(item)
            taken += 1
        return taken

    @property
    def queued(self) -> int:
        """Batches waiting in the inbox."""
        return self._inbox.qsize()

    def stop(self) -> None:
        """Ask the tracer to stop; ``ended`` follows from its thread."""
        if self.stopper is not None:
            self.stopper()

    def advance(self, now: float) -> bool:
        """Move the rate buckets on to the clock time *now* (the backend's ``now()``), so an idle
        trace's events/s and sparkline fall to 0 instead of freezing. True if they moved.
        The first call while tracing anchors the current elapsed second to *now*; a paused
        view stands still (its records wait in the inbox and are counted when it resumes)."""
        if self.state in (TraceState.ARMED, TraceState.LOADED) or self.paused:
            return False
        if self._anchor is None:
            self._anchor = now - self._second
            return False
        second = int(now - self._anchor)
        if second <= self._second:
            return False
        self.rates.extend([0] * min(second - self._second, RATE_WINDOW))
        self._second = second
        return True

    def sparkline_data(self) -> list[int]:
        """Accesses per second of trace time over the last RATE_WINDOW seconds (a fixed scale)."""
        return list(self.rates)

    def events_per_second(self) -> int:
        """Accesses in the last complete second of trace time."""
        return self.rates[-2]

    def _ingest(self, batch: Sequence[Access | Overflow]) -> None:
        count = self._count
        for rec in batch:
            if type(rec) is Access:
                self.bytes += rec.size
                count(rec.elapsed_us)
        seen = self.items.seen
        self.items.extend(batch)
        self.files += self.items.seen - seen

    def _drop_after(self, until_us: int) -> None:
        items = self.items
        late = items.drop_after(until_us)
        self.line_cut = LineCut(until_us, len(late))
        if not late:
            return
        self.files -= len(late)
        self.bytes -= sum(row.size or 0 for row in items.entries(late))
        last, meta = items.last_traced(), self.meta
        if meta is not None and meta.cut and last is not None:
            self.meta = replace(meta, cut_after=last.path, cut_us=last.elapsed_us or 0)

    def _count(self, elapsed_us: int) -> None:
        second = elapsed_us // 1_000_000
        if second > self._second:
            gap = min(second - self._second, RATE_WINDOW)
            self.rates.extend([0] * gap)
            self._second = second
        if second == self._second:
            self.rates[-1] += 1
        elif self._second - second < RATE_WINDOW:
            self.rates[-1 - (self._second - second)] += 1
