"""A backend over recorded data: a fixed node and pre-recorded accesses per container.

Used by the snapshot tests and the benchmarks to drive the real app deterministically,
without containerd or fanotify.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nydus_top.config import Config
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.node import NodeModel
from nydus_top.model.records import Access, Overflow
from nydus_top.model.trace import TraceRun, identity_of
from nydus_top.workspace.backend import ArmSpec


@dataclass
class ReplayBackend:
    """Traces replay ``recordings[container_id]`` in one batch and then keep "running"."""

    node: NodeModel  # filled by the caller (replace_all / container_event)
    config: Config
    recordings: Mapping[str, Sequence[Access | Overflow]] = field(default_factory=dict)
    created: Mapping[str, set[str]] = field(default_factory=dict)  # container id -> runtime files
    ranges: Mapping[str, RangeBook] = field(default_factory=dict)  # container id -> byte ranges read
    clock: float = 0.0
    armed: list[tuple[ArmSpec, TraceRun]] = field(default_factory=list)

    def now(self) -> float:
        return self.clock

    def attach(self, container_id: str, run: TraceRun, *, late: bool = False,
               identity: ListMeta | None = None) -> None:
        run.stopper = run.ended
        run.started(container_id, possibly_incomplete=late, identity=identity)
        run.records(self.recordings.get(container_id, ()))
        if container_id in self.ranges:
            run.ranges_update(self.ranges[container_id])

    def arm(self, spec: ArmSpec, run: TraceRun) -> None:
        run.stopper = run.ended
        self.armed.append((spec, run))

    def start(self, container_id: str, *, late: bool = False) -> None:
        """Simulate a container start: the first armed trace matching it (in arming order, as
        the live start-up capture hands a start to the first armed selector that takes it) begins
        replaying (``late``: as when the tracer's mark came after containerd had to be answered)."""
        container = self.node.containers[container_id]
        pod = self.node.pods[container.pod_id]
        for spec, run in list(self.armed):
            if spec.selector()(pod, container) is not None:
                self.armed.remove((spec, run))
                self.attach(container_id, run, late=late, identity=identity_of(container, pod))  # as the live one
                return

    def runtime_created(self, container_id: str, paths: Sequence[str]) -> set[str]:
        return self.created.get(container_id, set()).intersection(paths)

    def close(self) -> None:
        for _, run in self.armed:
            run.ended()
        self.armed.clear()
