"""StartupCapture's hook never blocks the NRI loop on the tracer, and answers by the deadline."""

from __future__ import annotations

import asyncio
import threading
import time

from nydus_top.model.node import Container, ContainerState
from nydus_top.tracing.arming import StartTrace, StartupCapture, starts_of_image
from nydus_top.tracing.tracer import TracerError


def test_a_tracer_slow_to_start_never_blocks_the_loop_and_is_reported_late() -> None:
    release = threading.Event()

    def slow_start(pid: int):  # a tracer helper being restarted, then failing once released
        release.wait(60)
        raise TracerError("tracer helper is not answering")

    async def scenario() -> tuple[float, bool, list[StartTrace]]:
        delivered: list[StartTrace] = []
        arrived = asyncio.Event()
        capture = StartupCapture(slow_start, margin_s=0.05)
        capture.arm(starts_of_image("nginx"), lambda _, st: (delivered.append(st), arrived.set()))
        container = Container("c1", "p1", "nginx", "docker.io/library/nginx:1", ContainerState.CREATED, pid=42)
        begin = time.monotonic()
        await asyncio.wait_for(capture.on_start_container(None, container, begin + 0.3), 60)  # a hang guard
        answered = time.monotonic() - begin
        still_starting = not release.is_set() and not delivered
        release.set()
        await asyncio.wait_for(arrived.wait(), 5)
        return answered, still_starting, delivered

    answered, still_starting, delivered = asyncio.run(scenario())
    # Answered while the tracer was still starting (it never gives up before it is released), and
    # not before the deadline less the reply margin: an event and a lower bound, no load breaks them.
    assert still_starting, "the hook waited for the tracer past containerd's deadline"
    assert answered >= 0.2
    [start] = delivered
    assert start.trace is None and start.possibly_incomplete
    assert start.error == "tracer failed: tracer helper is not answering"
