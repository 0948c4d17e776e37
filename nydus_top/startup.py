"""Start-up capture: place the tracer on a container before its entry point runs.

containerd calls NRI's StartContainer after ``runc create``: the container's pid is ``runc
init``, already inside the container's namespaces and blocked until every plugin has answered.
A trace armed for the next start of a container or image is started on that pid from the
StartContainer hook, and the hook returns only once the tracer's mark is in place, so the
first access of the entry point (its exec) is in the trace. The wait is bounded by the
request's deadline: past it the hook returns anyway (containerd would otherwise drop the
plugin) and the trace is flagged as possibly incomplete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from nydus_top.node import Container, Pod

T = TypeVar("T")

# Answer containerd this long before its request deadline, whatever the tracer is doing.
REPLY_MARGIN_S = 0.15


class Trace(Protocol):
    """A running trace, as the tracer's host API hands it out."""

    async def wait_ready(self) -> None: ...

    async def stop(self) -> None: ...


TraceStarter = Callable[[int], Awaitable[Any]]


@dataclass(slots=True)
class StartTrace:
    """The outcome of arming a trace during a container's StartContainer."""

    container: Container
    pod: Pod | None
    trace: Any | None  # the tracer's trace handle; None when it could not be started
    ready: bool  # mark in place before containerd got its answer
    arm_us: int  # hook entry to mark in place (or to giving up)
    error: str = ""  # why the trace could not be started, if it could not

    @property
    def possibly_incomplete(self) -> bool:
        """True when the entry point may have run before the mark was placed."""
        return not self.ready


@dataclass(eq=False)
class _Arming(Generic[T]):
    select: Callable[[Pod | None, Container], T | None]
    deliver: Callable[[T, StartTrace], None]
    once: bool
    active: bool = field(default=True)


class StartupCapture:
    """Arms traces for the next start of containers chosen by a selector.

    ``on_start_container`` is the StartContainer hook to register with the NRI plugin session;
    ``arm`` adds a selector. The first armed selector that accepts a starting container gets a
    trace for it (``deliver`` is called before the hook returns).
    """

    def __init__(self, start_trace: TraceStarter, *, margin_s: float = REPLY_MARGIN_S) -> None:
        self._start_trace = start_trace
        self._margin = margin_s
        self._armings: list[_Arming[Any]] = []

    def arm(
        self,
        select: Callable[[Pod | None, Container], T | None],
        deliver: Callable[[T, StartTrace], None],
        *,
        once: bool = True,
    ) -> Callable[[], None]:
        """Trace the next start of every container ``select`` returns a value for.

        ``deliver(value, start_trace)`` receives the trace. With ``once`` the arming ends after
        its first container. Returns a function that disarms it.
        """
        arming = _Arming(select, deliver, once)
        self._armings.append(arming)

        def disarm() -> None:
            arming.active = False
            if arming in self._armings:
                self._armings.remove(arming)

        return disarm

    @property
    def armed(self) -> int:
        return len(self._armings)

    async def on_start_container(self, pod: Pod | None, container: Container, deadline: float) -> None:
        """StartContainer hook: start and await the tracer for a selected container.

        ``deadline`` is the ``time.monotonic()`` by which containerd must have its answer.
        Never raises: a failure is delivered as a ``StartTrace`` with ``error`` set.
        """
        for arming in list(self._armings):
            if not arming.active:
                continue
            value = arming.select(pod, container)
            if value is None:
                continue
            if arming.once:
                arming.active = False
                self._armings.remove(arming)
            await self._trace(pod, container, deadline, lambda st, a=arming, v=value: a.deliver(v, st))
            return

    async def _trace(
        self, pod: Pod | None, container: Container, deadline: float, deliver: Callable[[StartTrace], None]
    ) -> None:
        begin = time.monotonic()

        def outcome(trace: Any | None, ready: bool, error: str = "") -> StartTrace:
            arm_us = int((time.monotonic() - begin) * 1e6)
            return StartTrace(container, pod, trace, ready, arm_us, error)

        if not container.pid:
            deliver(outcome(None, False, "container has no pid"))
            return
        starting = asyncio.ensure_future(self._start_trace(container.pid))
        try:
            trace = await asyncio.wait_for(asyncio.shield(starting), deadline - self._margin - time.monotonic())
        except TimeoutError:
            # Answer containerd now; the late trace is still delivered and sees all after its mark.
            starting.add_done_callback(lambda f: deliver(_late(f, outcome)))
            return
        except Exception as err:  # noqa: BLE001 - any tracer failure is reported, not raised
            deliver(outcome(None, False, f"tracer failed: {err}"))
            return
        try:
            await asyncio.wait_for(asyncio.shield(trace.wait_ready()), deadline - self._margin - time.monotonic())
        except TimeoutError:
            deliver(outcome(trace, False))
            return
        except Exception as err:  # noqa: BLE001
            await _quiet_stop(trace)
            deliver(outcome(None, False, f"tracer failed: {err}"))
            return
        deliver(outcome(trace, True))


def _late(future: asyncio.Future[Any], outcome: Callable[..., StartTrace]) -> StartTrace:
    if future.cancelled():
        return outcome(None, False, "tracer start cancelled")
    if future.exception() is not None:
        return outcome(None, False, f"tracer failed: {future.exception()}")
    return outcome(future.result(), False)


async def _quiet_stop(trace: Any) -> None:
    try:
        await trace.stop()
    except Exception:  # noqa: BLE001 - already failing; the caller reports the first error
        pass
