"""The recorder's Prometheus metrics (``[metrics] address``), all named ``nydus_top_*``.

One :class:`Metrics` is made by ``nydus-top record`` when metrics are on and handed to the parts
that count (the recorder, the pusher); with metrics off they get None and count nothing. It owns
its own registry (never prometheus_client's global one), so two recorders in one process (tests)
never share a counter. Labels take a small fixed set of values (reasons below, registry hosts of
the images pushed, at most :data:`MAX_REGISTRIES`): nothing a container names becomes a label.
State read at scrape time (the NRI connection, the push queue, memory) comes from callables
given to :meth:`observe`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Why a start was not recorded.
SKIP_REASONS = ("image_ref", "max_recordings", "recorded_already", "tracer")
# Why a saved recording may be incomplete.
INCOMPLETE_REASONS = ("mark_late", "queue_overflow", "open_failed", "path_too_long", "unreachable",
                      "tracer_limit", "memory_limit", "tracer_failed", "other")
MAX_REGISTRIES = 64  # registry label values; pushes to more registries count under "other"
FILE_BUCKETS = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
BYTE_BUCKETS = tuple(float(1 << n) for n in range(20, 41, 4))  # 1 MiB .. 1 TiB


class Metrics:
    """Every metric of one recorder, in a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "nydus_top_"
        self.starts_seen = Counter(p + "container_starts_seen", "Container starts the recorder was told of "
                                   "(after the image and namespace filters)", registry=r)
        self.starts_recorded = Counter(p + "container_starts_recorded", "Container starts traced", registry=r)
        self.starts_skipped = Counter(p + "container_starts_skipped", "Container starts not recorded, by reason",
                                      ["reason"], registry=r)
        self.incomplete = Counter(p + "recordings_incomplete", "Recordings saved as possibly incomplete, by "
                                  "reason (one recording may count under several)", ["reason"], registry=r)
        self.files = Histogram(p + "recording_files", "Files in each saved recording", buckets=FILE_BUCKETS,
                               registry=r)
        self.bytes = Histogram(p + "recording_bytes", "Bytes of the files of each saved recording",
                               buckets=BYTE_BUCKETS, registry=r)
        self.marks_late = Counter(p + "marks_late", "Traces whose mark was placed after the container started",
                                  registry=r)
        self.overflows = Counter(p + "kernel_queue_overflows", "Kernel fanotify event queue overflows",
                                 registry=r)
        self.range_windows = Counter(p + "range_windows", "Range traces whose start-up window ended", registry=r)
        self.watchdog_kills = Counter(p + "range_watchdog_kills", "Range tracers ended by the watchdog because a "
                                      "read of the image waited too long", registry=r)
        self.saves = Counter(p + "saves", "Lists saved", registry=r)
        self.save_failures = Counter(p + "save_failures", "Recordings that could not be saved", registry=r)
        self.runs_kept = Counter(p + "runs_kept", "Runs kept in the run store", registry=r)
        self.runs_pruned = Counter(p + "runs_pruned", "Oldest runs dropped from the run store", registry=r)
        self.pushes_queued = Counter(p + "pushes_queued", "Saved lists queued for pushing, by registry",
                                     ["registry"], registry=r)
        self.pushes_succeeded = Counter(p + "pushes_succeeded", "Lists pushed, by registry", ["registry"],
                                        registry=r)
        self.pushes_failed = Counter(p + "pushes_failed", "Lists given up after their tries, by registry",
                                     ["registry"], registry=r)
        self.state = _State()
        r.register(self.state)
        self._registries: set[str] = set()
        self._lock = threading.Lock()  # pushers count from their worker threads
        for reason in SKIP_REASONS:  # every series exists from the start: rate() sees the first one
            self.starts_skipped.labels(reason)
        for reason in INCOMPLETE_REASONS:
            self.incomplete.labels(reason)

    def observe(self, *, connected: Callable[[], bool], connections: Callable[[], int],
                push_queue: Callable[[], int], memory_used: Callable[[], int], memory_limit: Callable[[], int]) -> None:
        """Read these at each scrape (plain reads of the owners' state)."""
        self.state.read = _Readers(connected, connections, push_queue, memory_used, memory_limit)

    def registry_label(self, host: str) -> str:
        """*host* as a label value, or "other" past MAX_REGISTRIES distinct ones."""
        with self._lock:
            if host in self._registries:
                return host
            if len(self._registries) >= MAX_REGISTRIES:
                return "other"
            self._registries.add(host)
            return host

    def exposition(self) -> bytes:
        """The Prometheus text of every metric now."""
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class _Readers:
    connected: Callable[[], bool]
    connections: Callable[[], int]
    push_queue: Callable[[], int]
    memory_used: Callable[[], int]
    memory_limit: Callable[[], int]


class _State(Collector):
    """What the session, the pusher and the memory budget hold, read when scraped."""

    def __init__(self) -> None:
        self.read: _Readers | None = None

    def describe(self) -> Iterable[Metric]:
        return ()  # the names are known only once read (and never clash: they are ours)

    def collect(self) -> Iterable[Metric]:
        read = self.read
        if read is None:
            return
        p = "nydus_top_"
        yield GaugeMetricFamily(p + "nri_connected", "1 while registered with the runtime over NRI and "
                                "synchronized", value=float(read.connected()))
        yield CounterMetricFamily(p + "nri_connections", "Connections made to the runtime's NRI socket "
                                  "(each after the first is a reconnection)", value=read.connections())
        yield GaugeMetricFamily(p + "push_queue_length", "Saved lists waiting to be pushed",
                                value=read.push_queue())
        yield GaugeMetricFamily(p + "recording_memory_bytes", "Memory the recordings' files and ranges hold",
                                value=read.memory_used())
        yield GaugeMetricFamily(p + "recording_memory_limit_bytes", "The most the recordings' files and ranges "
                                "may hold together", value=read.memory_limit())
