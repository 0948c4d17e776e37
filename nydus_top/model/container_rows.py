"""Rows of the Containers screen: flattened pod/container data, filtered and sorted.

Pure functions over the node model's Pod/Container records; no UI here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import psutil

from nydus_top.model.node import Container, Pod

SORT_KEYS = ("pod", "container", "image", "state", "pid", "age")


@dataclass(frozen=True, slots=True)
class ContainerRow:
    id: str
    namespace: str
    pod: str
    container: str
    image: str
    state: str
    pid: int
    age_s: float | None  # None: neither the runtime nor the host knows when it started
    trace: str  # trace status shown in the last column ("" when not traced)

    @property
    def haystack(self) -> str:
        """What the filter matches against."""
        return f"{self.namespace}/{self.pod} {self.container} {self.image} {self.state} {self.pid} {self.trace}"


def build_rows(
    pods: Mapping[str, Pod], containers: Iterable[Container], traces: Mapping[str, str], now: float
) -> list[ContainerRow]:
    """One row per container; ``traces`` maps container id -> trace status text."""
    rows = []
    for c in containers:
        pod = pods.get(c.pod_id)
        start = c.started_at or c.created_at or process_start(c.pid)
        rows.append(ContainerRow(
            id=c.id,
            namespace=pod.namespace if pod else "",
            pod=pod.name if pod else c.pod_id[:12],
            container=c.name,
            image=c.image,
            state=str(c.state),
            pid=int(c.pid or 0),
            age_s=max(0.0, now - start) if start is not None else None,
            trace=traces.get(c.id, ""),
        ))
    return rows


@lru_cache(maxsize=4096)
def process_start(pid: int) -> float | None:
    """When the container's process started, from host procfs: containerd 1.7 (NRI 0.6) sends no
    timestamps. Cached per pid; it is display only."""
    if pid <= 0:
        return None
    try:
        started: float = psutil.Process(pid).create_time()  # psutil has no types
        return started
    except psutil.Error:
        return None


def compile_filter(query: str) -> tuple[re.Pattern[str] | None, bool]:
    """(pattern, negate) for a ``/`` filter: a regex, ``!`` in front negates. Raises re.error."""
    negate = query.startswith("!")
    body = query[1:] if negate else query
    return (re.compile(body, re.IGNORECASE) if body else None), negate


def filter_rows(rows: list[ContainerRow], query: str) -> list[ContainerRow]:
    pattern, negate = compile_filter(query)
    if pattern is None:
        return rows
    return [r for r in rows if bool(pattern.search(r.haystack)) != negate]


def sort_rows(rows: list[ContainerRow], key: str, reverse: bool = False) -> list[ContainerRow]:
    def value(r: ContainerRow) -> tuple[str | int | float, ...]:
        if key == "pod":
            return (r.namespace, r.pod, r.container)
        if key == "age":
            return (-1.0 if r.age_s is None else r.age_s, r.pod, r.container)
        return (getattr(r, key), r.namespace, r.pod, r.container)
    return sorted(rows, key=value, reverse=reverse)


def format_age(seconds: float | None) -> str:
    """k9s-style age: 42s, 5m12s, 3h4m, 2d5h; "-" when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"
