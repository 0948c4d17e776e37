"""What the app needs from a node: the live node model, tracing, config and a clock.

The app only talks to this protocol, so the screens run the same against the real node
(NRI session + fanotify tracer, see ``livebackend``) and against recorded data
(``replay``) in tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nydus_top.config import Config
from nydus_top.model.node import NodeModel
from nydus_top.model.trace import TraceRun
from nydus_top.tracing.arming import References, Selector, next_start_of, no_references, starts_of_image


@dataclass(frozen=True, slots=True)
class ArmSpec:
    """The operator's choice of the next container start to trace: by image, or by pod
    namespace/name + container name; ``selector()`` maps it onto ``nydus_top.tracing.arming``."""

    image: str = ""
    namespace: str = ""
    pod: str = ""
    container: str = ""

    def selector(self, references: References = no_references) -> Selector:
        """The start-up capture selector for this choice (see ``nydus_top.tracing.arming``); by
        image, a start by another of the image's *references* is one too."""
        if self.image:
            return starts_of_image(self.image, references)
        return next_start_of(self.namespace, self.pod, self.container)

    @property
    def label(self) -> str:
        return f"next start of image {self.image}" if self.image else (
            f"next start of {self.namespace}/{self.pod}/{self.container}")


class Backend(Protocol):
    node: NodeModel
    config: Config

    def now(self) -> float:
        """Wall clock in seconds (fixed in tests, for stable ages)."""

    def attach(self, container_id: str, run: TraceRun) -> None:
        """Start tracing a running container; feeds ``run`` from another thread."""

    def arm(self, spec: ArmSpec, run: TraceRun) -> None:
        """Trace the next matching container start from its first instruction."""

    def runtime_created(self, container_id: str, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` present only in the container's upper dir (created at runtime)."""

    def close(self) -> None:
        """Stop every trace and disconnect."""
