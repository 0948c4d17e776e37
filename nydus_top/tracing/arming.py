"""Start-up capture: place the tracer on a container before its entry point runs.

containerd calls NRI's StartContainer after ``runc create``: the container's pid is ``runc
init``, already inside the container's namespaces and blocked until every plugin has answered.
A trace armed for the next start of a container or image is started on that pid from the
StartContainer hook, and the hook returns only once the tracer's mark is in place, so the
first access of the entry point (its exec) is in the trace. The wait is bounded by the
request's deadline: past it the hook returns anyway (containerd would otherwise drop the
plugin) and the trace is flagged as possibly incomplete.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists.compact import Budget
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.node import Container, Pod
from nydus_top.model.records import TraceRecord
from nydus_top.tracing.range_tracer import (
    WINDOW_S,
    RangeSlots,
    RangesUnavailable,
    RangeTrace,
    start_ranges,
    unavailable,
)
from nydus_top.tracing.tracer import TracerPool

log = logging.getLogger(__name__)
T = TypeVar("T")

_ARMING = ThreadPoolExecutor(max_workers=16, thread_name_prefix="arm")

# Answer containerd this long before its request deadline, whatever the tracer is doing.
REPLY_MARGIN_S = 0.15


class LiveTrace:
    """A :class:`nydus_top.tracing.tracer.Trace` whose records are kept and can be followed live.

    Records arrive on the tracer's reader thread; ``records`` holds all of them in order and
    ``follow(callback)`` hands a listener everything so far, then each new batch (on the
    reader thread: a UI passes it on to its own loop). A listener that keeps the records
    itself follows with ``keep=False``: from then on they are not kept twice.

    With ``ranges`` a range tracer (:mod:`nydus_top.tracing.range_tracer`) runs beside it for the
    first ``window_s`` seconds; where it cannot, ``ranges_error`` says why (``ranges unavailable:
    ...``) and the trace goes on.
    """

    def __init__(self, pool: TracerPool, pid: int, *, ranges: bool = False, granularity: int = 0,
                 window_s: float = WINDOW_S, budget: Budget | None = None, slots: RangeSlots | None = None) -> None:
        self.pid = pid
        self.records: list[TraceRecord] = []
        self._listeners: list[Callable[[list[TraceRecord]], None]] = []
        self._lock = threading.Lock()
        self._keep = True
        self.trace = pool.start(pid, on_batch=self._on_batch)
        self.ranges: RangeTrace | None = None
        self.ranges_error = ""
        if ranges:
            try:
                self.ranges = start_ranges(pool, pid, granularity=granularity, window_s=window_s, budget=budget,
                                           slots=slots)
            except Exception as err:  # noqa: BLE001 - the file trace goes on without ranges
                self.ranges_error = unavailable(err)

    def _on_batch(self, batch: list[TraceRecord]) -> None:
        with self._lock:
            if self._keep:
                self.records.extend(batch)
            for listener in self._listeners:
                listener(batch)

    def follow(self, listener: Callable[[list[TraceRecord]], None], *, keep: bool = True) -> None:
        """Hand ``listener`` the records so far, then every new batch, in order; it must be quick
        (or block on purpose, as backpressure). With ``keep=False`` ``records`` empties and
        stays empty: the listener owns them."""
        with self._lock:  # held while catching up, so no new batch can overtake the backlog
            self._listeners.append(listener)
            if self.records:
                listener(list(self.records))
            if not keep:
                self._keep = False
                self.records.clear()

    def on_end(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (on a thread of its own) once the trace has ended."""

        def wait() -> None:
            self.trace.wait()
            callback()

        threading.Thread(target=wait, name=f"trace-end-{self.pid}", daemon=True).start()

    async def wait_ready(self, timeout: float) -> None:
        # Own threads: arming must not queue behind slow work in the loop's default executor.
        await asyncio.get_running_loop().run_in_executor(_ARMING, self.wait_ready_sync, max(timeout, 0.0))

    def wait_ready_sync(self, timeout: float) -> None:
        """Both marks in place (the range tracer's only if it can be: else ``ranges_error``)."""
        deadline = time.monotonic() + timeout
        self.trace.wait_ready(timeout)
        if self.ranges is not None:
            try:
                self.ranges.wait_ready(max(deadline - time.monotonic(), 0.0))
            except (RangesUnavailable, TimeoutError) as err:
                self.ranges_error = unavailable(err)
                ranges, self.ranges = self.ranges, None
                threading.Thread(target=_quiet_stop_ranges, args=(ranges,), daemon=True).start()

    async def stop(self) -> None:
        """Drain what the kernel queued and end the trace (at once if the target has exited)."""
        await asyncio.to_thread(self.stop_sync)

    def stop_sync(self) -> None:
        if self.ranges is not None:
            try:
                self.ranges.stop()
            except (TimeoutError, OSError) as err:
                self.ranges_error = f"ranges incomplete: the range tracer did not stop: {err}"
        self.trace.stop()

    def range_book(self) -> RangeBook | None:
        """The ranges recorded so far; None without a range tracer."""
        return None if self.ranges is None else self.ranges.collector.snapshot()

    @property
    def end_reason(self) -> str | None:
        return self.trace.end_reason

    @property
    def error(self) -> str | None:
        return self.trace.error


TraceStarter = Callable[[int], LiveTrace]
"""Starts a trace of a host pid and returns at once (the mark is awaited with wait_ready)."""


def pool_starter(pool: TracerPool, *, ranges: bool = False, granularity: Callable[[], int] = lambda: 0,
                 window: Callable[[], float] = lambda: WINDOW_S, budget: Budget | None = None,
                 slots: RangeSlots | None = None) -> TraceStarter:
    """A TraceStarter starting :class:`LiveTrace` s from a warm tracer pool (with a range tracer
    beside each one with ``ranges``, its files quiet once ``granularity()``-sized chunks cover them,
    for the first ``window()`` seconds, its bookkeeping within ``budget``, while ``slots`` has room)."""
    return lambda pid: LiveTrace(pool, pid, ranges=ranges, granularity=granularity(), window_s=window(),
                                 budget=budget, slots=slots)


# -- selectors for StartupCapture.arm ------------------------------------------------------------

Selector = Callable[[Pod | None, Container], Container | None]


def image_matches(image: str, pattern: str) -> bool:
    """Whether *image* (a reference as CRI names it) matches *pattern*.

    A pattern with ``*?[`` is a glob over the normalised reference (``docker.io/library/nginx:1``)
    and the reference as given; any other pattern is a reference compared after normalisation,
    its tag only when it names one (``nginx`` matches every tag of docker.io/library/nginx).
    """
    try:
        ref = parse_image_ref(image)
    except ImageRefError:
        return fnmatch.fnmatchcase(image, pattern)
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(s, pattern) for s in (image, str(ref), f"{ref.name}:{ref.tag}"))
    try:
        want = parse_image_ref(pattern)
    except ImageRefError:
        return False
    has_tag = ":" in pattern.rsplit("/", 1)[-1].split("@", 1)[0]
    return want.name == ref.name and (not has_tag or want.tag == ref.tag)


References = Callable[[str], tuple[str, ...]]  # an image's references (tags, digests, ID), () if unknown


def no_references(image: str) -> tuple[str, ...]:
    return ()


def matching_name(image: str, patterns: Sequence[str], references: References = no_references) -> str | None:
    """The name under which a start of *image* (the one reference CRI names it by) matches one of
    *patterns*: *image* itself, else the first of the image's other *references* that matches (its
    ID stands for *image*); None when none does. *references* is asked only when *image* does not match."""
    if any(image_matches(image, p) for p in patterns):
        return image
    for other in references(image):
        if any(image_matches(other, p) for p in patterns):
            return other if other.partition(":")[0] != "sha256" else image
    return None


def starts_of_image(pattern: str, references: References = no_references) -> Selector:
    """Select containers whose image matches *pattern* by any of its *references* (see
    :func:`matching_name`); the container is given the name that matched."""

    def select(pod: Pod | None, container: Container) -> Container | None:
        name = matching_name(container.image, (pattern,), references)
        if name is None:
            log.debug("start of %s (%s, image %s) is not one of image %s", container.name, container.id[:12],
                      container.image, pattern)
            return None
        return container if name == container.image else replace(container, image=name)

    return select


def next_start_of(namespace: str, pod_name: str, container_name: str) -> Selector:
    """Select the next start of a container by its pod and name (a restart gets a new id)."""

    def select(pod: Pod | None, container: Container) -> Container | None:
        same = pod is not None and (pod.namespace, pod.name) == (namespace, pod_name)
        return container if same and container.name == container_name else None

    return select


@dataclass(slots=True)
class StartTrace:
    """The outcome of arming a trace during a container's StartContainer."""

    container: Container
    pod: Pod | None
    trace: LiveTrace | None  # None when the tracer could not be started
    ready: bool  # mark in place before containerd got its answer
    arm_us: int  # hook entry to mark in place (or to giving up)
    error: str = ""  # why the trace could not be started, if it could not

    @property
    def possibly_incomplete(self) -> bool:
        """True when the entry point may have run before the mark was placed."""
        return not self.ready


@dataclass(eq=False)
class _Arming(Generic[T]):
    select: Callable[[Pod | None, Container], T | None]
    deliver: Callable[[T, StartTrace], None]
    once: bool
    active: bool = field(default=True)


class StartupCapture:
    """Arms traces for the next start of containers chosen by a selector.

    ``on_start_container`` is the StartContainer hook to register with the NRI plugin session;
    ``arm`` adds a selector (from any thread). The first armed selector that accepts a starting
    container gets a trace for it: ``deliver`` is called on the session's loop, before the hook
    returns unless the tracer itself was too slow to start (then once it has, flagged late).
    """

    def __init__(self, start_trace: TraceStarter, *, margin_s: float = REPLY_MARGIN_S) -> None:
        self._start_trace = start_trace
        self._margin = margin_s
        self._armings: list[_Arming[Any]] = []
        self._lock = threading.Lock()  # arm/disarm come from other threads than the hook

    def arm(
        self,
        select: Callable[[Pod | None, Container], T | None],
        deliver: Callable[[T, StartTrace], None],
        *,
        once: bool = True,
    ) -> Callable[[], bool]:
        """Trace the next start of every container ``select`` returns a value for.

        ``deliver(value, start_trace)`` receives the trace. With ``once`` the arming ends after
        its first container. Returns a function that disarms it and says whether it was still
        armed (False once a start has claimed it).
        """
        arming = _Arming(select, deliver, once)
        with self._lock:
            self._armings.append(arming)

        def disarm() -> bool:
            with self._lock:
                was = arming.active
                arming.active = False
                if arming in self._armings:
                    self._armings.remove(arming)
                return was

        return disarm

    def disarm_all(self) -> None:
        with self._lock:
            for arming in self._armings:
                arming.active = False
            self._armings.clear()

    def _claim(self, pod: Pod | None, container: Container) -> tuple[_Arming[Any], Any] | None:
        with self._lock:
            for arming in self._armings:
                value = arming.select(pod, container)
                if value is None:
                    continue
                if arming.once:
                    arming.active = False
                    self._armings.remove(arming)
                return arming, value
        return None

    async def on_start_container(self, pod: Pod | None, container: Container, deadline: float) -> None:
        """StartContainer hook: start and await the tracer for a selected container.

        ``deadline`` is the ``time.monotonic()`` by which containerd must have its answer.
        Never raises: a failure is delivered as a ``StartTrace`` with ``error`` set.
        """
        claimed = self._claim(pod, container)
        if claimed is not None:
            arming, value = claimed
            await self._trace(pod, container, deadline, lambda st: arming.deliver(value, st))

    async def _trace(
        self, pod: Pod | None, container: Container, deadline: float, deliver: Callable[[StartTrace], None]
    ) -> None:
        begin = time.monotonic()

        def outcome(trace: LiveTrace | None, ready: bool, error: str = "") -> StartTrace:
            arm_us = int((time.monotonic() - begin) * 1e6)
            return StartTrace(container, pod, trace, ready, arm_us, error)

        def started_late(starting: asyncio.Future[LiveTrace]) -> None:
            if starting.cancelled() or starting.exception() is not None:
                deliver(outcome(None, False, f"tracer failed: {starting.exception() or 'cancelled'}"))
            else:
                deliver(outcome(starting.result(), False))

        if not container.pid:
            deliver(outcome(None, False, "container has no pid"))
            return
        # Off the loop: a tracer helper that died is restarted by the start, which takes a while.
        starting = asyncio.get_running_loop().run_in_executor(_ARMING, self._start_trace, container.pid)
        try:
            trace = await asyncio.wait_for(asyncio.shield(starting), self._left(deadline))
        except (TimeoutError, asyncio.CancelledError) as stop:
            # Answer containerd now; the trace is delivered, flagged late, once the tracer runs.
            starting.add_done_callback(started_late)
            if isinstance(stop, asyncio.CancelledError):
                raise
            return
        except Exception as err:  # noqa: BLE001 - any tracer failure is reported, not raised
            deliver(outcome(None, False, f"tracer failed: {err}"))
            return
        left = self._left(deadline)
        if left <= 0:  # no time to wait for the mark: answer containerd now
            deliver(outcome(trace, False))
            return
        try:
            await trace.wait_ready(left)
        except (TimeoutError, asyncio.CancelledError) as stop:
            # Answer containerd now; the trace goes on and sees everything after its mark.
            deliver(outcome(trace, False))
            if isinstance(stop, asyncio.CancelledError):
                raise
            return
        except Exception as err:  # noqa: BLE001 - any tracer failure ends the start with one reported outcome
            await _quiet_stop(trace)
            deliver(outcome(None, False, f"tracer failed: {err}"))
            return
        deliver(outcome(trace, True))

    def _left(self, deadline: float) -> float:
        """Seconds left before containerd must be answered (less the reply margin)."""
        return max(deadline - self._margin - time.monotonic(), 0.0)


def _quiet_stop_ranges(ranges: RangeTrace) -> None:
    try:
        ranges.stop()
    except Exception:  # noqa: BLE001 - it never armed; nothing of it is used
        pass


async def _quiet_stop(trace: LiveTrace) -> None:
    try:
        await trace.stop()
    except Exception:  # noqa: BLE001 - already failing; the caller reports the first error
        pass
