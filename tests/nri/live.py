"""Helpers for tests against the sandbox node: a session on its own thread, events awaited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nydus_top.model.node import EventKind, NodeEvent, NodeModel
from nydus_top.nri.session import PluginSession, SessionThread


class LiveSession:
    """A PluginSession on a SessionThread whose model events a test can wait for."""

    def __init__(self, socket_path: str, **kw) -> None:
        self.model = NodeModel()
        self.events: list[NodeEvent] = []
        self._cond = threading.Condition()
        self.model.subscribe(self._record)
        self.session = PluginSession(self.model, socket_path, backoff=(0.05, 0.5), **kw)
        self.thread = SessionThread(self.session)

    def _record(self, event: NodeEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[NodeEvent], bool], timeout: float = 20.0, after: int = 0) -> NodeEvent:
        """The first event from index ``after`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if predicate(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching event; saw {[e.kind.value for e in self.events]}")
                self._cond.wait(left)

    def wait_kind(self, kind: EventKind, *, pod_id: str | None = None, container_id: str | None = None,
                  timeout: float = 20.0, after: int = 0) -> NodeEvent:
        return self.wait_for(lambda e: e.kind is kind
                             and (pod_id is None or (e.pod is not None and e.pod.id == pod_id))
                             and (container_id is None or (e.container is not None and e.container.id == container_id)),
                             timeout, after)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def __enter__(self) -> LiveSession:
        self.thread.start()
        self.wait_kind(EventKind.SYNC)
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.stop()
