"""The node model: the pods and containers the runtime reports, kept current from NRI.

Data flows one way: the NRI session (``nydus_top.nri.session``) writes the model on its asyncio
loop thread; screens, the recorder and ``nydus-top ps`` read it and subscribe to its events.

Threading: the model is copy-on-write. ``pods`` and ``containers`` are replaced, never mutated,
so a reader on any thread may iterate the dict it got without locking; ``snapshot()`` returns
both consistently. Subscriber callbacks run on the session's loop thread, synchronously, in
the order the runtime reported the changes, after the runtime got its answer (except on a
StartContainer held for start hooks). They must not block: the session reads nothing meanwhile.
A Textual app marks itself dirty or posts a message (never ``App.call_from_thread``, which waits
for the UI thread). An exception in a callback is logged and does not reach the session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

log = logging.getLogger(__name__)


class ContainerState(StrEnum):
    UNKNOWN = "unknown"
    CREATED = "created"
    PAUSED = "paused"
    RUNNING = "running"
    STOPPED = "stopped"


class PodState(StrEnum):
    READY = "ready"
    NOTREADY = "notready"


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod sandbox; ``pid`` is its sandbox (pause) process, 0 once stopped."""

    id: str
    name: str
    namespace: str
    uid: str
    state: PodState = PodState.READY
    pid: int = 0
    log_directory: str = ""  # where CRI writes its containers' logs (the pod's annotation), "" if unknown


@dataclass(frozen=True, slots=True)
class Container:
    """A container; times are Unix seconds, None when the runtime did not say."""

    id: str
    pod_id: str
    name: str
    image: str
    state: ContainerState
    pid: int = 0
    created_at: float | None = None
    started_at: float | None = None
    args: tuple[str, ...] = ()
    finished_at: float | None = None
    exit_code: int | None = None


class EventKind(StrEnum):
    SYNC = "sync"  # the whole model was replaced (first connection or resync)
    DISCONNECTED = "disconnected"  # the runtime connection was lost; the model is stale
    POD_RUN = "pod-run"
    POD_STOP = "pod-stop"
    POD_REMOVE = "pod-remove"
    CONTAINER_START = "container-start"
    CONTAINER_STOP = "container-stop"
    CONTAINER_REMOVE = "container-remove"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A change of the model: ``pod``/``container`` as they are after it (None for SYNC/DISCONNECTED)."""

    kind: EventKind
    pod: Pod | None = None
    container: Container | None = None
    time: float = field(default_factory=time.time)
    # SYNC after a disconnection: containers it reports for the first time that started (or, when
    # the runtime gives no start time, run) since then; their StartContainer was never seen.
    missed_starts: tuple[Container, ...] = ()


Callback = Callable[[NodeEvent], None]


def record_bytes(record: Pod | Container) -> int:
    """The text a record holds: what grows with what the runtime sends (never more than the bytes
    of the message it came from)."""
    if isinstance(record, Pod):
        return len(record.id) + len(record.name) + len(record.namespace) + len(record.uid) + len(record.log_directory)
    return (len(record.id) + len(record.pod_id) + len(record.name) + len(record.image)
            + sum(len(arg) for arg in record.args))


class NodeModel:
    """Pods and containers by id, plus the subscription API. ``nbytes``: the text they hold
    (:func:`record_bytes`), for the session's limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Callback, ...] = ()
        self.pods: Mapping[str, Pod] = MappingProxyType({})
        self.containers: Mapping[str, Container] = MappingProxyType({})
        self.connected = False
        self.nbytes = 0
        self._disconnected_at: float | None = None  # time.time() of the disconnection a resync ends

    def snapshot(self) -> tuple[Mapping[str, Pod], Mapping[str, Container]]:
        """Pods and containers of one and the same moment."""
        with self._lock:
            return self.pods, self.containers

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(NodeEvent)`` on every change; returns the function that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(cb for cb in self._subscribers if cb is not callback)

        return unsubscribe

    # Writers: called by the NRI session on its loop thread.

    def replace_all(self, pods: Iterable[Pod], containers: Iterable[Container]) -> None:
        """Replace everything with a runtime's full report (Synchronize)."""
        with self._lock:
            since, self._disconnected_at = self._disconnected_at, None
            before = self.containers
            self.pods = MappingProxyType({p.id: p for p in pods})
            self.containers = MappingProxyType({c.id: c for c in containers})
            self.nbytes = sum(map(record_bytes, self.pods.values())) + sum(map(record_bytes, self.containers.values()))
            self.connected = True
        missed = () if since is None else tuple(
            c for c in self.containers.values() if c.id not in before and _started_since(c, since))
        self._publish(NodeEvent(EventKind.SYNC, missed_starts=missed))

    def disconnected(self) -> None:
        """Note that the runtime connection is gone; the contents are kept until the resync."""
        with self._lock:
            self.connected = False
            if self._disconnected_at is None:
                self._disconnected_at = time.time()
        self._publish(NodeEvent(EventKind.DISCONNECTED))

    def pod_event(self, kind: EventKind, pod: Pod) -> None:
        """Apply a pod lifecycle event reported with the pod's current data."""
        with self._lock:
            pods = dict(self.pods)
            known = pods.get(pod.id)
            self.nbytes -= record_bytes(known) if known is not None else 0
            if kind is EventKind.POD_REMOVE:
                pods.pop(pod.id, None)
                containers = {k: c for k, c in self.containers.items() if c.pod_id != pod.id}
                self.nbytes -= sum(record_bytes(c) for c in self.containers.values() if c.pod_id == pod.id)
                self.containers = MappingProxyType(containers)
            else:
                pod = replace(pod, state=PodState.NOTREADY if kind is EventKind.POD_STOP else PodState.READY)
                pods[pod.id] = pod
                self.nbytes += record_bytes(pod)
            self.pods = MappingProxyType(pods)
        self._publish(NodeEvent(kind, pod))

    def container_event(self, kind: EventKind, pod: Pod, container: Container) -> Container:
        """Apply a container lifecycle event; returns the container as the model now has it."""
        now = time.time()
        with self._lock:
            containers = dict(self.containers)
            known = containers.get(container.id)
            self.nbytes -= record_bytes(known) if known is not None else 0
            if kind is EventKind.CONTAINER_REMOVE:
                containers.pop(container.id, None)
            else:
                if kind is EventKind.CONTAINER_START:
                    container = replace(container, state=ContainerState.RUNNING,
                                        started_at=container.started_at or now)
                elif kind is EventKind.CONTAINER_STOP:
                    container = replace(container, state=ContainerState.STOPPED,
                                        finished_at=container.finished_at or now)
                if known is not None:  # keep times we noted ourselves on older runtimes
                    container = replace(container, created_at=container.created_at or known.created_at,
                                        started_at=container.started_at or known.started_at)
                containers[container.id] = container
                self.nbytes += record_bytes(container)
            self.containers = MappingProxyType(containers)
            if pod.id not in self.pods and kind is not EventKind.CONTAINER_REMOVE:
                self.pods = MappingProxyType({**self.pods, pod.id: pod})
                self.nbytes += record_bytes(pod)
        self._publish(NodeEvent(kind, self.pods.get(pod.id, pod), container))
        return container

    def _publish(self, event: NodeEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not break the NRI session
                log.exception("node model subscriber %r failed on %s", callback, event.kind)


def _started_since(container: Container, since: float) -> bool:
    if container.state not in (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.STOPPED):
        return False  # created, not started (or the runtime cannot tell)
    return container.started_at is None or container.started_at >= since
