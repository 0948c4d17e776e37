"""Headless recording: a drop-in for nydus-snapshotter's optimizer NRI plugin.

For every container that starts (optionally only some images or pod namespaces) the recorder
traces the container from its first instruction (see :mod:`nydus_top.tracing.arming`) until
StopContainer or the configured timeout, then saves the optimizer's result files
``<persist_dir>/<repo dir>/<name>:<tag>[.timeout<N>s]`` and ``.csv`` atomically.

Unlike the optimizer it keys recordings by container, not by image: two containers of the same
image never share a tracer or write into the same file at once. Without ``overwrite`` an image is
recorded once: a start is skipped when its result files exist or another container of the same
image is being recorded; with ``overwrite`` each container is recorded and the last one to stop
wins. A recording that may be incomplete (mark late, files lost, a limit reached, the tracer
failed) is saved beside, as ``<list>.incomplete`` (with ``.csv`` and metadata saying why): it
never replaces a complete list nor blocks the image's next recording. One with no files is not
saved. Every recording with files, complete or not, is also kept as a run in the run store
(:mod:`nydus_top.runs.store`, at most ``keep_runs`` per image; its metadata says whether it is
complete), which never touches the optimizer's pair. Every skipped start, possibly incomplete
trace, kernel queue overflow, kept run and failed save is reported as one log line. ``reconfigure`` switches the
settings for later starts; a recording keeps the settings it was planned with.

A recording keeps its files compactly (:class:`nydus_top.lists.compact.CompactList`, 24 bytes a
file plus the path) as the tracer delivers them, within ``max_bytes`` (256 MiB by default); one
that reaches it is logged once, keeps what it has and is saved as possibly incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nydus_top.config import Config
from nydus_top.fs import confined
from nydus_top.fs.confined import ConfinedError
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists import meta as listmeta
from nydus_top.lists.compact import MAX_BYTES, MAX_TOTAL_BYTES, Budget, CompactList
from nydus_top.lists.files import (
    ListExistsError,
    ListFileError,
    ResultPaths,
    ranges_path,
    readable_size,
    result_paths,
    save_list,
)
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import RangeBook, totals
from nydus_top.model.node import Container, ContainerState, EventKind, NodeEvent, NodeModel, Pod
from nydus_top.model.records import LIMIT, OPEN, PATH_TOO_LONG, QUEUE, UNREACHABLE, Access, Overflow, TraceRecord
from nydus_top.nri.to_model import LOG_DIRECTORY_ANNOTATION
from nydus_top.recording.readiness import (
    READY_AFTER,
    READY_LINE,
    LogWatch,
    Readiness,
    ReadyGate,
    dropped_after,
    line_time,
    readiness_from,
)
from nydus_top.runs import store as runstore
from nydus_top.text import counted, printable
from nydus_top.tracing.arming import LiveTrace, References, StartTrace, matching_name, no_references
from nydus_top.tracing.overlay import OverlayError, OverlayRoot
from nydus_top.tracing.range_tracer import RangeCollector

if TYPE_CHECKING:  # metrics are optional: the recorder never needs prometheus_client itself
    from nydus_top.recording.metrics import Metrics

log = logging.getLogger(__name__)  # debug lines only; the operator's lines go to Recorder.log

INCOMPLETE_SUFFIX = ".incomplete"
_LOOKUP_BATCH = 4096  # recorded paths looked up in the container's layers at once
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")  # the longest path a tracer can name (4096 on Linux)


# Recordings in progress at once. Each has a tracer whose set of seen files may grow to 68 MiB
# (native/tracer.c SEEN_MAX), besides the recordings' shared 256 MiB (files and ranges). A start
# past it is not recorded (one line).
MAX_RECORDINGS = 8
# Range tracers at once (with --range-list). A start past it records files only (one line).
MAX_RANGE_TRACES = 2
# The most memory each part of a recorder may hold, whatever containers do; their sum is what the
# DaemonSet's limit must allow (deploy/daemonset.yaml, README).
TRACER_MAX_BYTES = 68 << 20  # a file tracer's set of seen files (native/tracer.c SEEN_MAX)
# A range tracer: its file table 36 MiB (NT_RANGE_FILES_MAX: 24 MiB, and the old 12 MiB while it
# grows), its ranges 52 MiB (NT_RANGE_INTERVALS_MAX: 16 MiB, at most 2x in grown arrays, 4 pairs
# at least a file, malloc's headers), lines for a slow reader 18 MiB (range_session.BACKLOG_MAX
# and the bytearray's slack) and a copy of one batch 8 MiB, its output buffers 9 MiB, the
# process ~25 MiB: 148 MiB, rounded up.
RANGE_TRACER_MAX_BYTES = 160 << 20
PROCESS_BYTES = 50 << 20  # the recorder's process itself (measured 43-49 MiB, bench/recorder_pod.py)
MEMORY_WORST_CASE = (MAX_TOTAL_BYTES + MAX_RECORDINGS * TRACER_MAX_BYTES + MAX_RANGE_TRACES * RANGE_TRACER_MAX_BYTES
                     + PROCESS_BYTES)  # 1,170 MiB


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """What the recorder needs of the configuration, plus its filters."""

    persist_dir: Path
    readable: bool = False
    timeout: int = 0
    overwrite: bool = False
    images: tuple[str, ...] = ()  # image patterns; empty: every image
    namespaces: tuple[str, ...] = ()  # pod namespaces; empty: every namespace
    max_bytes: int = MAX_BYTES  # one recording's files in memory at most
    range_list: bool = False  # also save <list>.ranges.json (byte ranges where they are known)
    granularity: int = 1 << 20  # ranges rounded out to this many bytes; 0 = exact
    ranges_window: int = 30  # seconds after a start that ranges are recorded ([ranges] window)
    max_total_bytes: int = MAX_TOTAL_BYTES  # every recording's files together (read at the recorder's start)
    keep_runs: int = runstore.DEFAULT_KEEP  # runs kept per image in the run store; 0: none
    max_recordings: int = MAX_RECORDINGS  # recordings in progress at once; later starts are not recorded
    ready: Readiness = Readiness()  # where start-up ends besides the container's stop


@dataclass(frozen=True, slots=True)
class Plan:
    """A start the recorder will trace, with the settings in effect when it was planned."""

    container_id: str
    paths: ResultPaths
    settings: RecordSettings
    image: str = ""  # the container's image reference, as the runtime gave it
    pair: bool = True  # False: the pair stays as it is (overwrite = false); this start only adds a run


@dataclass(slots=True)
class Overflows:
    """What the tracer reported lost, summed up (a flooding container cannot grow it)."""

    records: int = 0
    lost: int = 0  # files, where the records said
    unknown: bool = False  # some record did not say how many
    first_us: int = 0

    def add(self, item: Overflow) -> None:
        if not self.records:
            self.first_us = item.elapsed_us
        self.records += 1
        if item.lost is None:
            self.unknown = True
        else:
            self.lost += item.lost


@dataclass(slots=True)
class Recording:
    """One container's trace being collected: ``ingest`` runs on the tracer's reader thread,
    until the trace has ended; everything else on the loop."""

    plan: Plan
    pod_id: str
    name: str
    trace: LiveTrace
    files: CompactList
    log: Callable[[str], None]
    meta: ListMeta  # who was recorded; completeness is added when it is saved
    overflows: dict[str, Overflows] = field(default_factory=dict)  # by reason
    problems: list[str] = field(default_factory=list)  # why the trace may be incomplete
    causes: list[str] = field(default_factory=list)  # the same, as metrics.INCOMPLETE_REASONS
    ranges: RangeBook | None = None  # byte ranges to save (with range_list; whole files where none were recorded)
    range_notes: list[str] = field(default_factory=list)  # what limited the ranges (not the file list)
    timer: asyncio.TimerHandle | None = None
    finishing: asyncio.Task[None] | None = None
    overlay: OverlayRoot | None = None  # the container's root layers: which files it created (for its run)
    gate: ReadyGate | None = None  # ends the list at readiness (set by deliver)
    ready_timer: asyncio.TimerHandle | None = None
    watch: LogWatch | None = None  # following the container's log for the ready line

    def ingest(self, batch: list[TraceRecord]) -> None:
        files = self.files
        for item in batch:
            if isinstance(item, Access):
                if not files.append(item.path, item.size, item.elapsed_us) and files.refused == 1:
                    self.log(f"recording {self.name} reached {_limit(files)} with {len(files)} files: "
                             "later files are not recorded")
            else:
                if item.reason == LIMIT and LIMIT not in self.overflows:  # said now: the recording goes on
                    self.log(f"recording {self.name}: tracer limit reached: {len(files) + files.refused} files, "
                             "later files are not traced")
                self.overflows.setdefault(item.reason, Overflows()).add(item)


_CAUSES = {QUEUE: "queue_overflow", OPEN: "open_failed", PATH_TOO_LONG: "path_too_long", UNREACHABLE: "unreachable",
           LIMIT: "tracer_limit"}


class Skip(str):
    """Why a start is not recorded, in words, with its kind (one of metrics.SKIP_REASONS)."""

    kind: str

    def __new__(cls, text: str, kind: str) -> Skip:
        self = super().__new__(cls, text)
        self.kind = kind
        return self


def _tracer_failure(error: str) -> str:
    return error if error.startswith("tracer") else f"tracer failed: {error}"


def _ending(trace: LiveTrace) -> str:
    """Why a trace ended on its own, in the words of a save's log line."""
    if trace.error:
        return _tracer_failure(trace.error)  # e.g. "tracer killed by signal SIGKILL"
    if trace.end_reason == "target-exited":
        return "container exited"
    return "tracer stopped"


def _lost(reason: str, summary: Overflows, traced: int) -> str:
    """One problem line for the files lost for *reason* (*traced*: the files the tracer reported)."""
    if summary.lost:
        count = f"{summary.lost}{'+' if summary.unknown else ''} file{'' if summary.lost == 1 else 's'}"
    else:
        count = "an unknown number of files"
    since = f"from {summary.first_us / 1000:.1f} ms"
    if reason == LIMIT:
        return f"tracer limit reached: {traced} files, later files are not traced"
    if reason == QUEUE:
        times = "once" if summary.records == 1 else f"{summary.records} times"
        return f"the kernel's event queue overflowed {times} {since}: {count} lost"
    if reason == OPEN:
        return f"the kernel could not open {count} for the tracer {since}"
    if reason == PATH_TOO_LONG:
        return f"{count} with a path longer than PATH_MAX ({PATH_MAX} bytes) not recorded {since}"
    if reason == UNREACHABLE:
        return f"{count} outside the container's root not recorded {since}"
    return f"{count} lost ({reason}) {since}"


def _limit(files: CompactList) -> str:
    """Which memory limit refused *files* a file: its own, or the one all recordings share."""
    if files.budget_reached and files.budget is not None:
        return f"the limit of {_mib(files.budget.max_bytes)} in memory for all recordings together"
    return f"its limit of {_mib(files.max_bytes)} in memory"


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


class Planner:
    """Decides which starts are recorded and where (no I/O besides checking result files, and
    asking *references* for a start's other image names when its own matches no --image)."""

    def __init__(self, settings: RecordSettings, references: References = no_references) -> None:
        self.settings = settings
        self.references = references  # another name of a start's image may be the one --image gives
        self.in_flight: dict[str, Plan] = {}  # container id -> plan

    def plan(self, pod: Pod | None, container: Container) -> tuple[Plan | None, str]:
        """(plan, "") to record this start, or (None, reason) to skip it ("" when filtered; a
        reason is a :class:`Skip`)."""
        s = self.settings
        if s.namespaces and (pod is None or pod.namespace not in s.namespaces):
            log.debug("not recording %s: pod namespace not one of --namespace %s", _describe(container, pod),
                      ", ".join(s.namespaces))
            return None, ""
        image = matching_name(container.image, s.images, self.references) if s.images else container.image
        if image is None:
            log.debug("not recording %s: image %s (or another reference of it) matches no --image %s",
                      _describe(container, pod), container.image, ", ".join(s.images))
            return None, ""
        container = replace(container, image=image)
        try:
            paths = result_paths(s.persist_dir, container.image, timeout=s.timeout)
        except ImageRefError as err:
            return None, Skip(f"image {container.image!r}: {err}", "image_ref")
        if len(self.in_flight) >= s.max_recordings:
            return None, Skip(f"{len(self.in_flight)} recordings in progress, the most at once (MAX_RECORDINGS)",
                              "max_recordings")
        pair = True
        if not s.overwrite:
            busy = _existing(paths.list, container.image) if paths.list.exists() else next(
                (f"container {other.container_id[:12]} is recording {paths.list} already"
                 for other in self.in_flight.values() if other.paths == paths and other.pair), "")
            if busy:
                # The pair stays; the start is still worth a run until the image has keep_runs of them.
                runs = self._runs(container.image, paths)
                if runs >= s.keep_runs:
                    why = f"{busy}; {runs} runs of it kept (keep_runs = {s.keep_runs})" if s.keep_runs else busy
                    return None, Skip(why, "recorded_already")
                pair = False
        plan = Plan(container.id, paths, s, container.image, pair)
        self.in_flight[container.id] = plan
        return plan, ""

    def _runs(self, image: str, paths: ResultPaths) -> int:
        """Runs of *image* (its full reference: another registry's image of the same path and tag
        is another image) kept or being recorded."""
        try:
            kept = len(runstore.runs_of(runstore.image_dir(self.settings.persist_dir, image)))
        except (ImageRefError, OSError):
            kept = 0
        return kept + sum(1 for other in self.in_flight.values()
                          if other.paths == paths and runstore.same_image(other.image, image))

    def done(self, container_id: str) -> None:
        self.in_flight.pop(container_id, None)


def _existing(pair: Path, image: str) -> str:
    """Why an existing pair stops this start from writing it; it names the image its metadata
    names when that is another one (the pair's path has no registry host: it is never taken as
    this image's list)."""
    try:
        meta = listmeta.read(pair)
    except listmeta.MetaError:
        meta = None
    if meta is not None and meta.image and not runstore.same_image(meta.image, image):
        return f"{pair} exists, the list of {meta.image} (overwrite = false)"
    return f"{pair} exists (overwrite = false)"


def _identity(start: StartTrace, image: str) -> ListMeta:
    """The metadata of a recording of *start*: its *image* (the runtime's name for it, or the other
    reference of it that --image named), never shortened."""
    container, pod = start.container, start.pod
    try:
        digest = parse_image_ref(image).digest
    except ImageRefError:
        digest = ""
    return ListMeta(image=image, digest=digest, container=container.name, container_id=container.id,
                    pod=f"{pod.namespace}/{pod.name}" if pod is not None else "")


def _describe(container: Container, pod: Pod | None) -> str:
    where = f"{pod.namespace}/{pod.name}/" if pod is not None else ""
    return f"{where}{container.name} ({container.id[:12]})"


class Recorder:
    """Collects traces handed over by :class:`nydus_top.tracing.arming.StartupCapture` and saves them."""

    def __init__(self, settings: RecordSettings, log: Callable[[str], None], model: NodeModel | None = None,
                 on_saved: Callable[[Path, str], object] | None = None, metrics: Metrics | None = None,
                 log_about: Callable[[str, str, str], None] | None = None,
                 references: References = no_references) -> None:
        self.model = model
        self.log_about = log_about  # (line, container id, image): a line about one container, for JSON logs
        self.metrics = metrics  # None: metrics are off
        self.on_saved = on_saved  # (list, image) after each save, from a worker thread; must not block
        self.planner = Planner(settings, references)
        self.log = log
        self.recordings: dict[str, Recording] = {}
        self.budget = Budget(settings.max_total_bytes)  # what every recording's files take together

    @property
    def settings(self) -> RecordSettings:
        return self.planner.settings

    def _say(self, container: Container, line: str) -> None:
        """Log *line*, about *container*."""
        self._log_about(line, container.id, container.image)

    def _about(self, rec: Recording, line: str) -> None:
        """Log *line*, about the container *rec* records."""
        self._log_about(line, rec.plan.container_id, rec.plan.image)

    def _log_about(self, line: str, container_id: str, image: str) -> None:
        if self.log_about is not None:
            self.log_about(line, container_id, image)
        else:
            self.log(line)

    def reconfigure(self, settings: RecordSettings) -> None:
        """Use *settings* from the next start on; recordings in progress keep theirs."""
        self.planner.settings = settings

    # -- StartupCapture callbacks ---------------------------------------------------------

    def select(self, pod: Pod | None, container: Container) -> Plan | None:
        plan, reason = self.planner.plan(pod, container)
        if reason:
            self._say(container, f"not recording {_describe(container, pod)}: {reason}")
        if self.metrics is not None and (plan is not None or reason):
            self.metrics.starts_seen.inc()
            if reason:
                self.metrics.starts_skipped.labels(reason.kind if isinstance(reason, Skip) else "other").inc()
        return plan

    def deliver(self, plan: Plan, start: StartTrace) -> None:
        who = _describe(start.container, start.pod)
        if start.trace is None:
            self.planner.done(plan.container_id)
            self._say(start.container, f"cannot record {who}: {start.error}")
            if self.metrics is not None:
                self.metrics.starts_skipped.labels("tracer").inc()
            return
        files = CompactList(plan.settings.max_bytes, self.budget)
        rec = Recording(plan, start.container.pod_id, who, start.trace, files, self.log,
                        _identity(start, plan.image))
        if start.trace.ranges_error:
            self._say(start.container, f"recording {who}: {start.trace.ranges_error}; its range list names whole files")
        if not start.ready:
            rec.problems.append(
                f"tracer was not ready {start.arm_us / 1000:.1f} ms after StartContainer: start-up may be missing"
            )
            rec.causes.append("mark_late")
            self._say(start.container, f"recording {who} may miss its start-up: {rec.problems[-1]}")
            if self.metrics is not None:
                self.metrics.marks_late.inc()
        if plan.settings.keep_runs > 0 and start.container.pid:
            try:  # read now: the container's mounts are gone once it has stopped, its layers are not
                rec.overlay = OverlayRoot.for_pid(start.container.pid)
            except OverlayError:
                pass  # not an overlay root: its run names no runtime-created file
        self.recordings[plan.container_id] = rec
        if self.metrics is not None:
            self.metrics.starts_recorded.inc()
        armed = f"mark placed in {start.arm_us / 1000:.1f} ms" if start.ready else "mark late"
        self._say(start.container, f"recording {who} into {plan.paths.list} ({armed})")
        loop = asyncio.get_running_loop()
        trace = start.trace
        rec.gate = ReadyGate(plan.settings.ready, rec.ingest,
                             lambda: loop.call_soon_threadsafe(self._ready, plan.container_id),
                             lambda: trace.trace.mark_ns)
        start.trace.follow(rec.gate, keep=False)  # the recording owns the records from now on
        trace.on_end(lambda: loop.call_soon_threadsafe(self.finish, plan.container_id, _ending(trace)))
        ready = plan.settings.ready
        if plan.settings.timeout > 0:
            rec.timer = loop.call_later(plan.settings.timeout, self.finish, plan.container_id, "timeout")
        if ready.after > 0:
            rec.ready_timer = loop.call_later(ready.after, self._ready_after, plan.container_id)
        if ready.line is not None:
            self._watch_log(rec, start)

    def _watch_log(self, rec: Recording, start: StartTrace) -> None:
        """Follow the container's CRI log for the ready line (said once when its pod names no log)."""
        ready = rec.plan.settings.ready
        assert ready.line is not None
        directory = start.pod.log_directory if start.pod is not None else ""
        if not directory:
            self.log(f"recording {rec.name}: its pod names no log directory ({LOG_DIRECTORY_ANNOTATION}): "
                     "no ready line can be seen")
            return
        cid = rec.plan.container_id
        rec.watch = LogWatch(directory, start.container.name, ready.line,
                             lambda line, at_ns: self._ready_line(cid, line, at_ns))
        rec.watch.start()

    def _ready_line(self, container_id: str, line: str, at_ns: int | None) -> None:
        rec = self.recordings.get(container_id)
        if rec is not None and rec.gate is not None and rec.gate.cut_at(READY_LINE, line, at_ns):
            until = rec.gate.until_us
            where = (f"reads traced after {line_time(until)} (its time in the log) are not listed, but for the "
                     "tracer's first batch after it" if until is not None
                     else "its log gave no time: reads until it was seen are listed")
            self._about(rec, f"recording {rec.name}: ready line seen; {where}")

    def _ready_after(self, container_id: str) -> None:
        rec = self.recordings.get(container_id)
        if rec is not None and rec.gate is not None:
            rec.gate.cut_at(READY_AFTER, f"{rec.plan.settings.ready.after:g}s")

    def _ready(self, container_id: str) -> None:
        """Start-up has ended at readiness: save the recording now."""
        rec = self.recordings.get(container_id)
        if rec is not None and rec.gate is not None and rec.gate.cut is not None:
            self.finish(container_id, f"ready: {rec.gate.cut[0]}")

    # -- lifecycle --------------------------------------------------------------------------

    def finish(self, container_id: str, why: str) -> asyncio.Task[None] | None:
        """Stop the recording of *container_id* (if any) and save it; returns the saving task."""
        rec = self.recordings.get(container_id)
        if rec is None:
            return None
        if rec.finishing is None:
            rec.finishing = asyncio.get_running_loop().create_task(self._finish(rec, why))
        return rec.finishing

    def on_node_event(self, event: NodeEvent) -> None:
        """Node model subscriber: a stopped or removed container (or pod) ends its recording."""
        if event.kind in (EventKind.CONTAINER_STOP, EventKind.CONTAINER_REMOVE) and event.container:
            self.finish(event.container.id, "StopContainer")
        elif event.kind in (EventKind.POD_STOP, EventKind.POD_REMOVE) and event.pod:
            for rec in list(self.recordings.values()):
                if rec.pod_id == event.pod.id:
                    self.finish(rec.plan.container_id, "pod stopped")
        elif event.kind is EventKind.SYNC and self.model is not None:
            for missed in event.missed_starts:  # nothing armed their start: say so, once each
                self.log(f"{_describe(missed, self.model.pods.get(missed.pod_id))} started while disconnected:"
                         " not recorded")
            # After a reconnection: containers that stopped meanwhile end their recordings.
            containers = self.model.containers
            for cid in list(self.recordings):
                known = containers.get(cid)
                if known is None or known.state is ContainerState.STOPPED:
                    self.finish(cid, "stopped while disconnected")

    async def close(self) -> None:
        """Stop and save every recording (plugin shutdown)."""
        tasks = [t for cid in list(self.recordings) if (t := self.finish(cid, "shutdown")) is not None]
        if tasks:
            await asyncio.gather(*tasks)

    async def _finish(self, rec: Recording, why: str) -> None:
        for timer in (rec.timer, rec.ready_timer):
            if timer is not None:
                timer.cancel()
        if rec.watch is not None:
            rec.watch.stop()
        try:
            await rec.trace.stop()
        except Exception as err:  # noqa: BLE001 - a failing stop is one problem line, the recording is still saved
            rec.problems.append(f"stopping the tracer failed: {err}")
            rec.causes.append("other")
        if rec.trace.error:
            rec.problems.append(_tracer_failure(rec.trace.error))
            rec.causes.append("tracer_failed")
        # The trace has ended: every batch was ingested.
        said = _drop_after_line(rec)
        if said:
            self._about(rec, f"recording {rec.name}: {said}")
        for reason, summary in rec.overflows.items():
            rec.problems.append(_lost(reason, summary, len(rec.files) + rec.files.refused))
            rec.causes.append(_CAUSES.get(reason, "other"))
        if self.metrics is not None and QUEUE in rec.overflows:
            self.metrics.overflows.inc(rec.overflows[QUEUE].records)
        if rec.files.reached:
            rec.causes.append("memory_limit")
            within = (f"the recordings' shared {_mib(rec.files.budget.max_bytes)}" if rec.files.budget_reached
                      and rec.files.budget is not None else _mib(rec.files.max_bytes))
            rec.problems.append(f"memory limit reached: {len(rec.files)} files in {within}, "
                                f"{rec.files.refused} more not recorded")
        _end_ranges(rec, self.metrics)
        self.recordings.pop(rec.plan.container_id, None)
        try:
            await asyncio.to_thread(self._save, rec, why)
        finally:  # only now may another container of the image record into the same files
            rec.files.release()
            if rec.trace.ranges is not None:
                rec.trace.ranges.collector.release()
            self.planner.done(rec.plan.container_id)

    def _save(self, rec: Recording, why: str) -> None:
        s = rec.plan.settings
        problems = "; ".join(rec.problems)
        state = f"; POSSIBLY INCOMPLETE: {problems}" if problems else ""
        if not len(rec.files):  # an empty list helps no one, and would block the image's next recording
            self._about(rec, f"recording {rec.name} ({why}) not saved: no files recorded{state}")
            return
        if self.metrics is not None:
            self._count(rec, self.metrics)
        # A possibly incomplete recording goes beside the list: it never replaces a complete
        # one, and never takes the name a later, complete recording will be saved under.
        target = incomplete_path(rec.plan.paths.list) if problems else rec.plan.paths.list
        meta = _with_cut(replace(rec.meta, complete=not problems, incomplete=problems), rec).with_origin()
        if s.keep_runs > 0:  # first: the pair's line stays the recording's last word
            self._keep_run(rec, meta)
        if not rec.plan.pair:
            self._about(rec, f"recording {rec.name} ({why}): {rec.plan.paths.list} left as it is (overwrite = false); "
                     f"this start is kept as a run only{state}")
            return
        self._save_pair(rec, why, target, meta, state)

    def _save_pair(self, rec: Recording, why: str, target: Path, meta: ListMeta, state: str) -> None:
        s, problems = rec.plan.settings, meta.incomplete
        try:
            _drop_orphan_sidecars(target, s.persist_dir)
            result = save_list(rec.files, target, readable=s.readable, overwrite=s.overwrite or bool(problems),
                               meta=meta, ranges=rec.ranges, granularity=s.granularity, root=s.persist_dir)
        except ListExistsError as err:
            self._about(rec, f"recording {rec.name} ({why}) not saved: {err}")
            return
        except ListFileError as err:
            self._about(rec, f"recording {rec.name} ({why}) NOT SAVED: {err}{state}")
            if self.metrics is not None:
                self.metrics.save_failures.inc()
            return
        except Exception as err:  # noqa: BLE001 - never lose a recording without a word
            self._about(rec, f"recording {rec.name} ({why}) NOT SAVED: {type(err).__name__}: {err}{state}")
            if self.metrics is not None:
                self.metrics.save_failures.inc()
            return
        if self.metrics is not None:
            self.metrics.saves.inc()
        for warning in result.warnings:
            self._about(rec, f"{target}: {warning}")
        beside = f", not as {rec.plan.paths.list}" if problems else ""
        self._about(rec, f"saved {target} ({counted(result.written, 'file')}, {why}) for {rec.name}{beside}{state}")
        if rec.ranges is not None:
            known, with_ranges, whole = totals(((f.path, f.size) for f in rec.files), rec.ranges, s.granularity)
            notes = f"; {'; '.join(rec.range_notes)}" if rec.range_notes else ""
            self._about(rec, f"saved {ranges_path(target)}: ranges of {known}/{len(rec.files)} files, prefetch "
                     f"{readable_size(with_ranges)} with ranges / {readable_size(whole)} whole files{notes}")
        if self.on_saved is not None and not problems:  # only complete lists go to the registry
            self.on_saved(target, rec.plan.image)

    def _keep_run(self, rec: Recording, meta: ListMeta) -> None:
        """Keep the recording as a run of its image (one log line, whatever happens)."""
        s = rec.plan.settings
        runtime, left_out = _created(rec)
        try:
            result, dropped = runstore.save_run(s.persist_dir, rec.files, replace(meta, runtime=runtime),
                                                keep=s.keep_runs, readable=s.readable, ranges=rec.ranges,
                                                granularity=s.granularity)
        except Exception as err:  # noqa: BLE001 - ImageRefError, ListFileError, anything: one line
            self._about(rec, f"run of {rec.name} NOT KEPT: {err}")
            if self.metrics is not None:
                self.metrics.save_failures.inc()
            return
        if self.metrics is not None:
            self.metrics.runs_kept.inc()
            self.metrics.runs_pruned.inc(len(dropped))
        kind = "complete" if meta.complete else "possibly incomplete"
        created = f", {len(runtime)} created at runtime" if runtime else ""
        if left_out:
            created += f" and {left_out} more not named (limit of {_mib(listmeta.RUNTIME_MAX_BYTES)})"
        older = f", dropped {len(dropped)} oldest" if dropped else ""
        self._about(rec, f"kept run {result.paths[0]} ({result.written} files, {kind}{created}{older}) for {rec.name}")


    @staticmethod
    def _count(rec: Recording, metrics: Metrics) -> None:
        """A recording with files about to be saved: its size, and why it may be incomplete."""
        metrics.files.observe(len(rec.files))
        metrics.bytes.observe(rec.files.total_size())
        for cause in dict.fromkeys(rec.causes):
            metrics.incomplete.labels(cause).inc()


def _drop_after_line(rec: Recording) -> str:
    """Drop the files ingested before the ready line was seen but traced after it was printed;
    what to say of it, in the app's words (:func:`dropped_after`), or "" without a stamped line."""
    gate = rec.gate
    if gate is None or gate.until_us is None:
        return ""
    dropped = rec.files.drop_after(gate.until_us)
    if dropped:
        last = rec.files.last()
        gate.last = (last.path, last.elapsed_us or 0) if last is not None else ("", 0)
    return dropped_after(gate.until_us, dropped)


def _with_cut(meta: ListMeta, rec: Recording) -> ListMeta:
    """*meta* saying where and why the list was cut at readiness (as it is when it was not)."""
    gate = rec.gate
    if gate is None or gate.cut is None or not len(rec.files):
        return meta
    return replace(meta, cut=gate.cut[0], cut_detail=gate.cut[1], cut_after=gate.last[0], cut_us=gate.last[1])


def _created(rec: Recording) -> tuple[tuple[str, ...], int]:
    """The recorded files the container created at runtime (only in its upper directory), within
    the metadata's limit, and how many more were left out; none when its layers cannot be read.
    Looked up in batches, so a big recording's paths are never all copied at once."""
    overlay = rec.overlay
    if overlay is None:
        return (), 0
    kept: tuple[str, ...] = ()
    left_out = 0
    batch: list[str] = []

    def look_up() -> None:
        nonlocal kept, left_out
        more, dropped = listmeta.limit_runtime([*kept, *overlay.upper_only(batch)])
        kept, left_out = more, left_out + dropped
        batch.clear()

    try:
        for entry in rec.files:
            batch.append(entry.path)
            if len(batch) == _LOOKUP_BATCH:
                look_up()
        look_up()
    except (OverlayError, OSError):
        return (), 0
    return kept, left_out


_NOTICES = {
    "limit": "more files than it keeps",
    "backlog": "we read its lines too slowly",
    "window": "its start-up window ended",
}


def _end_ranges(rec: Recording, metrics: Metrics | None = None) -> None:
    """Take the ended trace's byte ranges, and what limited them (said with the range list: the
    file list is no less complete for it)."""
    ranges = rec.trace.ranges
    if rec.plan.settings.range_list:
        # the trace has ended: its book is final, and taken as it is (a copy would double it)
        book = ranges.collector.book if ranges is not None else rec.trace.range_book()
        rec.ranges = RangeBook() if book is None else book
    if ranges is not None:
        end = ranges.collector
        rec.range_notes += mapped_notes(end)  # first: what stopped the ranges, if anything, ends the line
        rec.meta = replace(rec.meta, mapped=end.mapped_bytes(), unobserved=tuple(end.unobserved_now()),
                           cached=end.cached_bytes(), cache_unobserved=end.cache_unobserved)
        if end.notices:
            budget = end.budget
            words = [_NOTICES.get(n, n) if n != "memory" else
                     "the limit in memory for all recordings together" +
                     (f" ({_mib(budget.max_bytes)})" if budget is not None else "") for n in end.notices]
            rec.range_notes.append(f"range tracer: {', '.join(words)} (files past it count whole)")
        if ranges.error:
            rec.range_notes.append(f"range tracer: {ranges.error}")
        if metrics is not None:
            if "window" in end.notices:
                metrics.range_windows.inc()
            if ranges.stalled:
                metrics.watchdog_kills.inc()


def mapped_notes(collector: RangeCollector) -> list[str]:
    """What the log says of mapped pages: their bytes (apart from the reads) and the files whose
    pages could not be followed (they count whole)."""
    notes = [f"mapped: {readable_size(collector.mapped_bytes())}"]
    if collector.unobserved:
        files = ", ".join(printable(f"{path or '(all)'}: {why}") for path, why in collector.unobserved.items())
        notes.append(f"mapped pages unobserved (counted whole): {files}")
    cached = collector.cached_bytes()
    if cached:  # the page cache's pages are shared: they may be read ahead or another container's
        notes.append(f"page cache: {readable_size(cached)} (cached during the trace apart from what was seen read "
                     "or mapped: a mapping too short to sample, readahead or another container's reads)")
    if collector.cache_unobserved:
        notes.append(f"short-lived mappings unobserved: {printable(collector.cache_unobserved)}")
    return notes


def _drop_orphan_sidecars(list_path: Path, root: Path) -> None:
    """Remove the identity and range files of a list the operator deleted (with its csv) to
    record it again.

    By name in its directory's fd, reached from *root* (persist_dir) without following a symlink:
    a directory planted as one never makes us remove a file elsewhere (the save then says why)."""
    try:
        dfd = confined.open_existing_dir(list_path.parent, root, f"save {list_path}")
    except ConfinedError:
        return
    if dfd is None:
        return
    try:
        names = (list_path.name, f"{list_path.name}.csv")
        if not any(confined.exists_in(dfd, name) for name in names):
            for sidecar in (listmeta.path_for(list_path).name, ranges_path(list_path).name):
                try:
                    os.unlink(sidecar, dir_fd=dfd)
                except OSError:  # none there, or the save that follows reports why
                    pass
    finally:
        os.close(dfd)


def incomplete_path(list_path: Path) -> Path:
    """Where a possibly incomplete recording of *list_path* is saved: ``<list>.incomplete``."""
    return list_path.with_name(list_path.name + INCOMPLETE_SUFFIX)


def settings_from(config: Config, images: Iterable[str] = (), namespaces: Iterable[str] = (),
                  range_list: bool = False) -> RecordSettings:
    """RecordSettings from a :class:`nydus_top.config.Config` and the command line options."""
    return RecordSettings(
        persist_dir=Path(os.fspath(config.persist_dir)),
        readable=config.readable,
        timeout=config.timeout,
        overwrite=config.overwrite,
        images=tuple(images),
        namespaces=tuple(namespaces),
        range_list=range_list,
        granularity=config.granularity,
        ranges_window=config.ranges_window,
        keep_runs=config.keep_runs,
        ready=readiness_from(config),
    )
