"""The app's backend on a real node: NRI session (own thread and loop) + fanotify tracer pool.

Data flows one way: the NRI session writes the node model, the app reads it; each trace's
reader thread feeds its ``TraceRun`` (blocking when the UI is behind, which is the
backpressure). Armed traces are placed by ``nydus_top.tracing.arming.StartupCapture``, the same
mechanism as the headless recorder's; attached traces get a small watcher thread each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from nydus_top.config import Config
from nydus_top.cri.image_store import ImageStore
from nydus_top.lists.meta import ListMeta
from nydus_top.model.node import Container, NodeModel
from nydus_top.model.trace import TraceRun, identity_of
from nydus_top.nri.session import HOOK_BUDGET, PluginSession, SessionThread
from nydus_top.recording.readiness import READY_AFTER, READY_LINE, LogWatch, Readiness, ReadyGate, readiness_from
from nydus_top.tracing.arming import StartTrace, StartupCapture, pool_starter
from nydus_top.tracing.overlay import OverlayError, OverlayRoot
from nydus_top.tracing.range_tracer import RangeTrace, start_ranges, unavailable
from nydus_top.tracing.tracer import Trace, TracerError, TracerPool
from nydus_top.workspace.backend import ArmSpec

log = logging.getLogger(__name__)

READY_TIMEOUT = 5.0  # seconds an attach may take to place its mark
STOP_TIMEOUT = 10.0


class LiveBackend:
    """Implements ``nydus_top.workspace.backend.Backend`` on this node.

    ``hook_budget``: longest containerd's StartContainer waits for an armed tracer's mark.
    """

    def __init__(self, config: Config, nri_socket: str | None = None, *, hook_budget: float = HOOK_BUDGET) -> None:
        self.config = config
        self.node = NodeModel()
        self.pool = TracerPool()
        self._lock = threading.Lock()
        self._traces: list[Trace] = []
        self._ranges: dict[int, RangeTrace] = {}  # id(trace) -> its range tracer
        self.capture = StartupCapture(pool_starter(self.pool, ranges=config.ranges,
                                                   granularity=lambda: self.config.granularity,
                                                   window=lambda: self.config.ranges_window))
        self.session = PluginSession(self.node, str(nri_socket or config.nri_socket), name=config.plugin_name,
                                     idx=config.plugin_index, hook_budget=hook_budget)
        self.session.add_start_hook(self.capture.on_start_container)
        self.images = ImageStore(config.containerd_address)  # an armed image's other references
        self._thread = SessionThread(self.session)

    def start(self) -> None:
        """Start the tracer helper and connect to the runtime (in the background)."""
        self.pool.warm_up()
        self._thread.start()

    def now(self) -> float:
        return time.time()

    # -- traces ----------------------------------------------------------------------------

    def attach(self, container_id: str, run: TraceRun) -> None:
        container = self.node.containers.get(container_id)
        if container is None or not container.pid:
            raise TracerError(f"container {container_id[:12]} has no running process")
        trace = self.pool.start(container.pid, container_id=container.id, on_batch=run.records)
        ranges = None
        if self.config.ranges and self.config.ranges_on_attach:  # its start-up is over: files only, unless asked
            try:
                ranges = start_ranges(self.pool, container.pid, container_id=container.id,
                                      granularity=self.config.granularity, window_s=self.config.ranges_window)
            except TracerError as err:
                run.ranges_unavailable(unavailable(err))
        self._track(trace, run, ranges)
        threading.Thread(target=self._watch, args=(trace, run, container, ranges), daemon=True,
                         name=f"watch-{container.name}").start()

    def arm(self, spec: ArmSpec, run: TraceRun) -> None:
        disarm = self.capture.arm(spec.selector(self.images.references),
                                  lambda selected, start: self._armed_start(start, run, selected))

        def stop() -> None:
            if disarm():  # still waiting for its start: nothing to drain
                run.ended()

        run.stopper = stop

    def _armed_start(self, start: StartTrace, run: TraceRun, selected: Container) -> None:
        """StartupCapture delivery (on the NRI loop): hand the trace of the start to its run.
        *selected* is the container as the selector took it (named by the image reference armed)."""
        if start.trace is None:
            run.ended(f"cannot trace the start of {start.container.name}: {start.error}")
            return
        live = start.trace
        self._track(live.trace, run, live.ranges)
        if live.ranges_error:
            run.ranges_unavailable(live.ranges_error)
        if live.ranges is not None:
            run.ranges_from(live.ranges.collector)
            _say_stall(live.ranges, run)
        run.started(start.container.id, possibly_incomplete=start.possibly_incomplete,
                    identity=identity_of(selected, start.pod))
        ready = readiness_from(self.config)
        if not ready.enabled:
            live.follow(run.records, keep=False)  # the run keeps them
            live.on_end(lambda: self._ended(live.trace, run))
            return
        # Start-up ends at readiness ([record] ready_*): the trace stops there, its metadata says so.
        gate = ReadyGate(ready, run.records, run.stop, lambda: live.trace.mark_ns)
        watch = self._watch_log(start, ready, gate)
        loop = asyncio.get_running_loop()
        live.follow(gate, keep=False)

        def ended() -> None:
            if watch is not None:
                loop.call_soon_threadsafe(watch.stop)
            if gate.cut is not None:
                run.meta = replace(run.meta or ListMeta(), cut=gate.cut[0], cut_detail=gate.cut[1],
                                   cut_after=gate.last[0], cut_us=gate.last[1])
            if gate.until_us is not None:  # what it passed on before the line was seen, traced after it
                run.drop_after(gate.until_us)
            self._ended(live.trace, run)

        live.on_end(ended)
        if ready.after > 0:
            timer = loop.call_later(ready.after, gate.cut_at, READY_AFTER, f"{ready.after:g}s")
            live.on_end(lambda: loop.call_soon_threadsafe(timer.cancel))

    @staticmethod
    def _watch_log(start: StartTrace, ready: Readiness, gate: ReadyGate) -> LogWatch | None:
        """Follow the started container's CRI log for the ready line, when there is one to see."""
        directory = start.pod.log_directory if start.pod is not None else ""
        if ready.line is None or not directory:
            return None
        watch = LogWatch(directory, start.container.name, ready.line,
                         lambda line, at_ns: gate.cut_at(READY_LINE, line, at_ns))
        watch.start()
        return watch

    def _track(self, trace: Trace, run: TraceRun, ranges: RangeTrace | None = None) -> None:
        with self._lock:
            self._traces.append(trace)
            if ranges is not None:
                self._ranges[id(trace)] = ranges

        def stop() -> None:  # from the UI thread: never block it on the drain
            threading.Thread(target=self._stop, args=(trace,), daemon=True).start()

        run.stopper = stop

    def _watch(self, trace: Trace, run: TraceRun, container: Container, ranges: RangeTrace | None) -> None:
        try:
            trace.wait_ready(READY_TIMEOUT)
        except (TracerError, TimeoutError) as err:
            run.ended(f"cannot trace: {err}")
            self._stop(trace)
            return
        if ranges is not None:
            try:
                ranges.wait_ready(READY_TIMEOUT)
                run.ranges_from(ranges.collector)
                _say_stall(ranges, run)
            except (TracerError, TimeoutError) as err:
                run.ranges_unavailable(unavailable(err))
                with self._lock:
                    self._ranges.pop(id(trace), None)
                self._stop_ranges(ranges)
        run.started(container.id)
        trace.wait()
        self._ended(trace, run)

    def _ended(self, trace: Trace, run: TraceRun) -> None:
        with self._lock:
            if trace in self._traces:
                self._traces.remove(trace)
            ranges = self._ranges.pop(id(trace), None)
        if ranges is not None:  # the target exited: its range tracer ends by itself; await it
            self._stop_ranges(ranges)
        run.ended(trace.error or "", "" if trace.end_reason == "stopped" else trace.end_reason or "")

    def _stop(self, trace: Trace) -> None:
        with self._lock:
            ranges = self._ranges.get(id(trace))
        if ranges is not None:
            self._stop_ranges(ranges)
        try:
            trace.stop(STOP_TIMEOUT)
        except (TimeoutError, OSError) as err:
            log.warning("tracer for pid %s did not stop cleanly: %s", trace.pid, err)

    @staticmethod
    def _stop_ranges(ranges: RangeTrace) -> None:
        try:
            ranges.stop(STOP_TIMEOUT)
        except (TimeoutError, OSError) as err:
            log.warning("range tracer for pid %s did not stop cleanly: %s", ranges.pid, err)

    # -- files -----------------------------------------------------------------------------

    def runtime_created(self, container_id: str, paths: Sequence[str]) -> set[str]:
        container = self.node.containers.get(container_id)
        if container is None or not container.pid:
            raise OSError(f"container {container_id[:12]} is not running: its upper dir is not visible")
        try:
            return set(OverlayRoot.for_pid(container.pid).upper_only(paths))
        except OverlayError as err:
            raise OSError(str(err)) from None

    def close(self) -> None:
        """Stop every trace and disconnect. Armed runs are the workspace's to end (it stops
        them before calling this); what is still armed here is only disarmed."""
        self.capture.disarm_all()
        with self._lock:
            traces = list(self._traces)
        stoppers = [threading.Thread(target=self._stop, args=(t,), daemon=True) for t in traces]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(STOP_TIMEOUT)
        self._thread.stop()
        self.pool.close()
        self.images.close()


def _say_stall(ranges: RangeTrace, run: TraceRun) -> None:
    """Once the range tracer has ended, tell ``run`` if its watchdog ended it (a thread that waits)."""

    def wait() -> None:
        ranges.wait()
        if ranges.stalled:
            run.ranges_unavailable(ranges.stalled)

    threading.Thread(target=wait, name=f"ranges-end-{ranges.pid}", daemon=True).start()
