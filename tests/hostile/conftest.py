"""The record and tracer suites' fixtures that the hostile recorder tests use as arguments."""

from __future__ import annotations

from record.conftest import persist, pod, workload_image
from tracer.conftest import container, pool, progs

__all__ = ["container", "persist", "pod", "pool", "progs", "workload_image"]
