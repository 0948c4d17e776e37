"""The app's backend on a real node: NRI session (own thread and loop) + fanotify tracer pool.

Data flows one way: the NRI session writes the node model, the app reads it; each trace's
reader thread feeds its ``TraceRun`` (blocking when the UI is behind, which is the
backpressure), and a small watcher thread per trace reports readiness and the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from nydus_top.backend import ArmSpec
from nydus_top.config import Config
from nydus_top.node import Container, NodeModel, Pod
from nydus_top.nri.session import PluginSession, SessionThread
from nydus_top.overlay import OverlayError, OverlayRoot
from nydus_top.tracer import Trace, TracerError, TracerPool
from nydus_top.tracerun import TraceRun

log = logging.getLogger(__name__)

READY_TIMEOUT = 5.0  # seconds an attach may take to place its mark
STOP_TIMEOUT = 10.0


class LiveBackend:
    """Implements ``nydus_top.backend.Backend`` on this node."""

    def __init__(self, config: Config, nri_socket: str | None = None) -> None:
        self.config = config
        self.node = NodeModel()
        self.pool = TracerPool()
        self._lock = threading.Lock()
        self._armed: list[tuple[ArmSpec, TraceRun]] = []
        self._traces: list[Trace] = []
        self.session = PluginSession(self.node, str(nri_socket or config.nri_socket),
                                     name=config.plugin_name, idx=config.plugin_index)
        self.session.add_start_hook(self._on_start)
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
        trace = self._start(container.pid, run)
        threading.Thread(target=self._watch, args=(trace, run, container_id, True), daemon=True,
                         name=f"watch-{container.name}").start()

    def arm(self, spec: ArmSpec, run: TraceRun) -> None:
        with self._lock:
            self._armed.append((spec, run))

        def disarm() -> None:
            with self._lock:
                if (spec, run) in self._armed:
                    self._armed.remove((spec, run))
                    run.ended()

        run.stopper = disarm

    async def _on_start(self, pod: Pod, container: Container, deadline: float) -> None:
        """NRI StartContainer hook: place armed tracers before containerd gets its answer."""
        with self._lock:
            matched = [(s, r) for s, r in self._armed if s.matches(pod, container)]
            for item in matched:
                self._armed.remove(item)
        for _, run in matched:
            if not container.pid:
                run.ended("the runtime reported no pid for the starting container")
                continue
            try:
                trace = self._start(container.pid, run)
                await trace.wait_ready_async(max(0.0, deadline - time.monotonic()))
            except (TracerError, TimeoutError, OSError) as err:
                run.ended(f"cannot trace the start of {container.name}: {err}")
                continue
            run.started(container.id)
            threading.Thread(target=self._watch, args=(trace, run, container.id, False), daemon=True,
                             name=f"watch-{container.name}").start()

    def _start(self, pid: int, run: TraceRun) -> Trace:
        trace = self.pool.start(pid, on_batch=run.records)
        with self._lock:
            self._traces.append(trace)

        def stop() -> None:  # from the UI thread: never block it on the drain
            threading.Thread(target=self._stop, args=(trace,), daemon=True).start()

        run.stopper = stop
        return trace

    def _watch(self, trace: Trace, run: TraceRun, container_id: str, wait_ready: bool) -> None:
        if wait_ready:
            try:
                trace.wait_ready(READY_TIMEOUT)
            except (TracerError, TimeoutError) as err:
                run.ended(f"cannot trace: {err}")
                self._stop(trace)
                return
            run.started(container_id)
        trace.wait()
        with self._lock:
            if trace in self._traces:
                self._traces.remove(trace)
        run.ended(trace.error or "", "" if trace.end_reason == "stopped" else trace.end_reason or "")

    def _stop(self, trace: Trace) -> None:
        try:
            trace.stop(STOP_TIMEOUT)
        except (TimeoutError, OSError) as err:
            log.warning("tracer for pid %s did not stop cleanly: %s", trace.pid, err)

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
        with self._lock:
            armed, self._armed = self._armed, []
            traces = list(self._traces)
        for _, run in armed:
            run.ended()
        stoppers = [threading.Thread(target=self._stop, args=(t,), daemon=True) for t in traces]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(STOP_TIMEOUT)
        self._thread.stop()
        self.pool.close()

