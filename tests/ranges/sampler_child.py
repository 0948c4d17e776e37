"""Runs a :class:`nydus_top.tracing.mapped.SamplerProcess` in a fresh, single-threaded interpreter.

The sampler forks, as it does in the product from the single-threaded range session. Forked from
pytest, whose process may hold other tests' gRPC threads (the sandbox's CRI client), the child can
abort in the library's fork handlers; so the tests run it here: ``python -I sampler_child.py crash|stuck``
prints one JSON object of what the sampler gave.
"""

from __future__ import annotations

import json
import os
import select
import sys

from nydus_top.tracing import mapped


class CrashingSampler(mapped.MappedSampler):
    def __init__(self) -> None:
        super().__init__(os.open("/proc", os.O_RDONLY | os.O_DIRECTORY), (0, 0), 0)

    def sample(self) -> list[bytes]:
        os._exit(7)


class StuckSampler(mapped.MappedSampler):
    """A sampler whose second sample never ends (as on page tables locked for long)."""

    def __init__(self) -> None:
        super().__init__(os.open("/proc", os.O_RDONLY | os.O_DIRECTORY), (0, 0), 0)
        self.calls = 0

    def sample(self) -> list[bytes]:
        self.calls += 1
        if self.calls > 1:
            select.select([], [], [])  # waits for nothing, forever
        return [b'{"mapped": "/x", "off": 0, "len": 4096}\n'] if self.calls == 1 else []


def crash() -> dict[str, object]:
    sampler = mapped.SamplerProcess(CrashingSampler(), period_ms=10)
    woke = bool(select.select([sampler.wake_fd], [], [], 30)[0])
    taken = sampler.take()
    return {"woke": woke, "taken": taken.decode(), "ended": sampler.ended, "finish": sampler.finish().decode()}


def stuck() -> dict[str, object]:
    sampler = mapped.SamplerProcess(StuckSampler(), period_ms=10)
    woke = bool(select.select([sampler.wake_fd], [], [], 30)[0])  # the first sample's line
    out = sampler.finish(timeout=0.2)
    try:
        os.waitpid(sampler.pid, os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True  # killed and reaped by finish
    return {"woke": woke, "finish": out.decode(), "reaped": reaped}


if __name__ == "__main__":
    print(json.dumps({"crash": crash, "stuck": stuck}[sys.argv[1]]()))
