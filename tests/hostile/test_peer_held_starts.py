"""A runtime peer flooding StartContainer calls cannot hold more than session.MAX_HELD_STARTS of
them in start hooks (each could arm a tracer); more are answered at once, without hooks."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import session as nri_session
from nydus_top.nri import ttrpc
from testkit.hostile_peer import Served, run
from testkit.runtime_peer import container_msg, pod_msg


def start(i: int) -> bytes:
    return api.StateChangeEvent(event=api.START_CONTAINER, pod=pod_msg(i),
                                container=container_msg(i, state=api.CONTAINER_CREATED)).SerializeToString()


@pytest.mark.parametrize("extra", [0, 1])
def test_at_most_max_held_starts_wait_for_hooks(tmp_path: Path, caplog, extra: int) -> None:
    limit = nri_session.MAX_HELD_STARTS

    async def main():
        release = asyncio.Event()
        hooked: list[str] = []

        async def hold(pod, container, deadline):
            hooked.append(container.id)
            await release.wait()

        async with Served(tmp_path, hook_budget=30.0) as s:
            s.session.add_start_hook(hold)
            conn = await s.peer.accept()
            await conn.handshake()
            streams = [conn.send_call("StateChange", start(i), timeout_nano=120 * 10**9)
                       for i in range(limit + extra)]
            last = conn.send_call("StateChange", api.StateChangeEvent(
                event=api.RUN_POD_SANDBOX, pod=pod_msg(99)).SerializeToString())
            answered = [await conn.receive(1)]  # what comes back while the hooks hold
            while answered[-1].stream_id != last:
                answered.append(await conn.receive(1))
            assert [m.stream_id for m in answered] == streams[limit:] + [last]
            assert len(hooked) == limit and len(s.model.containers) == limit + extra  # the model has all
            release.set()
            held = [await conn.receive(1) for _ in range(limit)]
            assert sorted(m.stream_id for m in held) == streams[:limit]
            assert all(ttrpc.decode_response(m.data).status.code == 0 for m in answered + held)

    run(main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == ([f"NRI: {limit} StartContainer calls are held for start hooks already (MAX_HELD_STARTS); "
                      "more start without them"] if extra else [])
