"""Headless recording: a drop-in for nydus-snapshotter's optimizer NRI plugin.

For every container that starts (optionally only some images or pod namespaces) the recorder
traces the container from its first instruction (see :mod:`nydus_top.startup`) until
StopContainer or the configured timeout, then saves the optimizer's result files
``<persist_dir>/<repo dir>/<name>:<tag>[.timeout<N>s]`` and ``.csv`` atomically.

Unlike the optimizer it keys recordings by container, not by image: two containers of the same
image never share a tracer or write into the same file at once. Without ``overwrite`` an image is
recorded once: a start is skipped when its result files exist or another container of the same
image is being recorded; with ``overwrite`` each container is recorded and the last one to stop
wins. Every skipped start, possibly incomplete trace, kernel queue overflow and failed save is
reported as one log line. ``reconfigure`` switches the settings for later starts; a recording
keeps the settings it was planned with.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nydus_top.config import Config
from nydus_top.imageref import ImageRefError
from nydus_top.listfile import ListExistsError, ListFileError, ResultPaths, result_paths, save_list
from nydus_top.node import Container, ContainerState, EventKind, NodeEvent, NodeModel, Pod
from nydus_top.records import Access
from nydus_top.startup import LiveTrace, StartTrace, image_matches


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """What the recorder needs of the configuration, plus its filters."""

    persist_dir: Path
    readable: bool = False
    timeout: int = 0
    overwrite: bool = False
    images: tuple[str, ...] = ()  # image patterns; empty: every image
    namespaces: tuple[str, ...] = ()  # pod namespaces; empty: every namespace


@dataclass(frozen=True, slots=True)
class Plan:
    """A start the recorder will trace, with the settings in effect when it was planned."""

    container_id: str
    paths: ResultPaths
    settings: RecordSettings
    image: str = ""  # the container's image reference, as the runtime gave it


@dataclass(slots=True)
class Recording:
    """One container's trace being collected."""

    plan: Plan
    pod_id: str
    name: str
    trace: LiveTrace
    accesses: list[Access] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why the trace may be incomplete
    timer: asyncio.TimerHandle | None = None
    finishing: asyncio.Task[None] | None = None


class Planner:
    """Decides which starts are recorded and where (no I/O besides checking result files)."""

    def __init__(self, settings: RecordSettings) -> None:
        self.settings = settings
        self.in_flight: dict[str, Plan] = {}  # container id -> plan

    def plan(self, pod: Pod | None, container: Container) -> tuple[Plan | None, str]:
        """(plan, "") to record this start, or (None, reason) to skip it ("" when filtered)."""
        s = self.settings
        if s.namespaces and (pod is None or pod.namespace not in s.namespaces):
            return None, ""
        if s.images and not any(image_matches(container.image, p) for p in s.images):
            return None, ""
        try:
            paths = result_paths(s.persist_dir, container.image, timeout=s.timeout)
        except ImageRefError as err:
            return None, f"image {container.image!r}: {err}"
        if not s.overwrite:
            if paths.list.exists():
                return None, f"{paths.list} exists (overwrite = false)"
            for other in self.in_flight.values():
                if other.paths == paths:
                    return None, f"container {other.container_id[:12]} is recording {paths.list} already"
        plan = Plan(container.id, paths, s, container.image)
        self.in_flight[container.id] = plan
        return plan, ""

    def done(self, container_id: str) -> None:
        self.in_flight.pop(container_id, None)


def _describe(container: Container, pod: Pod | None) -> str:
    where = f"{pod.namespace}/{pod.name}/" if pod is not None else ""
    return f"{where}{container.name} ({container.id[:12]})"


class Recorder:
    """Collects traces handed over by :class:`nydus_top.startup.StartupCapture` and saves them."""

    def __init__(self, settings: RecordSettings, log: Callable[[str], None], model: NodeModel | None = None,
                 on_saved: Callable[[Path, str], object] | None = None) -> None:
        self.model = model
        self.on_saved = on_saved  # (list, image) after each save, from a worker thread; must not block
        self.planner = Planner(settings)
        self.log = log
        self.recordings: dict[str, Recording] = {}

    @property
    def settings(self) -> RecordSettings:
        return self.planner.settings

    def reconfigure(self, settings: RecordSettings) -> None:
        """Use *settings* from the next start on; recordings in progress keep theirs."""
        self.planner.settings = settings

    # -- StartupCapture callbacks ---------------------------------------------------------

    def select(self, pod: Pod | None, container: Container) -> Plan | None:
        plan, reason = self.planner.plan(pod, container)
        if reason:
            self.log(f"not recording {_describe(container, pod)}: {reason}")
        return plan

    def deliver(self, plan: Plan, start: StartTrace) -> None:
        who = _describe(start.container, start.pod)
        if start.trace is None:
            self.planner.done(plan.container_id)
            self.log(f"cannot record {who}: {start.error}")
            return
        rec = Recording(plan, start.container.pod_id, who, start.trace)
        if not start.ready:
            rec.problems.append(
                f"tracer was not ready {start.arm_us / 1000:.1f} ms after StartContainer: start-up may be missing"
            )
            self.log(f"recording {who} may miss its start-up: {rec.problems[-1]}")
        self.recordings[plan.container_id] = rec
        armed = f"mark placed in {start.arm_us / 1000:.1f} ms" if start.ready else "mark late"
        self.log(f"recording {who} into {plan.paths.list} ({armed})")
        loop = asyncio.get_running_loop()
        start.trace.on_end(lambda: loop.call_soon_threadsafe(self.finish, plan.container_id, "container exited"))
        if plan.settings.timeout > 0:
            rec.timer = loop.call_later(plan.settings.timeout, self.finish, plan.container_id, "timeout")

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
        if rec.timer is not None:
            rec.timer.cancel()
        try:
            await rec.trace.stop()
        except Exception as err:  # noqa: BLE001
            rec.problems.append(f"stopping the tracer failed: {err}")
        if rec.trace.error:
            rec.problems.append(f"tracer: {rec.trace.error}")
        for item in list(rec.trace.records):
            if isinstance(item, Access):
                rec.accesses.append(item)
            else:
                lost = f"{item.lost} files" if item.lost is not None else "files"
                rec.problems.append(f"the kernel lost {lost} at {item.elapsed_us / 1000:.1f} ms")
        self.recordings.pop(rec.plan.container_id, None)
        try:
            await asyncio.to_thread(self._save, rec, why)
        finally:  # only now may another container of the image record into the same files
            self.planner.done(rec.plan.container_id)

    def _save(self, rec: Recording, why: str) -> None:
        s = rec.plan.settings
        paths = rec.plan.paths
        try:
            result = save_list(rec.accesses, paths.list, readable=s.readable, overwrite=s.overwrite)
        except ListExistsError as err:
            self.log(f"recording {rec.name} ({why}) not saved: {err}")
            return
        except ListFileError as err:
            self.log(f"recording {rec.name} ({why}) NOT SAVED: {err}")
            return
        except Exception as err:  # noqa: BLE001 - never lose a recording without a word
            self.log(f"recording {rec.name} ({why}) NOT SAVED: {type(err).__name__}: {err}")
            return
        for warning in result.warnings:
            self.log(f"{paths.list}: {warning}")
        state = "; POSSIBLY INCOMPLETE: " + "; ".join(rec.problems) if rec.problems else ""
        self.log(f"saved {paths.list} ({result.written} files, {why}) for {rec.name}{state}")
        if self.on_saved is not None:
            self.on_saved(paths.list, rec.plan.image)


def settings_from(config: Config, images: Iterable[str] = (), namespaces: Iterable[str] = ()) -> RecordSettings:
    """RecordSettings from a :class:`nydus_top.config.Config` and the command line filters."""
    return RecordSettings(
        persist_dir=Path(os.fspath(config.persist_dir)),
        readable=config.readable,
        timeout=config.timeout,
        overwrite=config.overwrite,
        images=tuple(images),
        namespaces=tuple(namespaces),
    )
