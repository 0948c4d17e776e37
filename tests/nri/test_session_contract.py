"""Start hooks at the edges (nydus_top/nri/session.py): the deadline when the runtime's call
carries no timeout or a tiny one (the request timeout of Configure then, or the call's own), and
the pod a hook is given (the model's, updated, not the call's copy). Written to kill the mutants
scripts/mutation found surviving (issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nydus_top.model.node import Container, Pod
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.session import REQUEST_TIMEOUT
from testkit.runtime_peer import container_msg, pod_msg
from tests.nri.test_session import Harness, run, start_payload, state_change


@pytest.mark.parametrize(("timeout_nano", "limit"), [(0, REQUEST_TIMEOUT / 2), (1, 0.5e-9)])
def test_a_start_without_a_timeout_uses_the_request_timeout_and_a_tiny_one_its_own(
        tmp_path: Path, timeout_nano: int, limit: float) -> None:
    seen: dict[str, float] = {}

    async def hook(pod: Pod, container: Container, deadline: float) -> None:
        seen["deadline"], seen["entered"] = deadline, time.monotonic()

    async def main() -> None:
        async with Harness(tmp_path, hook_budget=5.0) as h:  # the budget is not what limits here
            h.session.add_start_hook(hook)
            conn = await h.peer.accept()
            await conn.handshake()  # its Configure names no request timeout: REQUEST_TIMEOUT
            t0 = time.monotonic()
            ans = await conn.call("StateChange", start_payload(), timeout_nano=timeout_nano)
            assert (ans.code, ans.payload) == (0, b"")
            # half the timeout from the request's arrival, which lies between t0 and the hook's start
            assert t0 + limit <= seen["deadline"] <= seen["entered"] + limit

    run(main())


def test_a_start_hook_gets_the_pod_as_the_model_has_it(tmp_path: Path) -> None:
    seen: list[str] = []

    async def hook(pod: Pod, container: Container, deadline: float) -> None:
        seen.append(pod.name)

    async def main() -> None:
        async with Harness(tmp_path) as h:
            h.session.add_start_hook(hook)
            conn = await h.peer.accept()
            await conn.handshake()
            await conn.call("StateChange", state_change(api.RUN_POD_SANDBOX, pod_msg(1)))
            stale = pod_msg(1)  # the same pod, as the call carries it
            stale.name = "stale-copy"
            ans = await conn.call("StateChange", state_change(api.START_CONTAINER, stale,
                                                             container_msg(1, state=api.CONTAINER_CREATED)))
            assert (ans.code, ans.payload) == (0, b"")
            assert seen == ["pod-1"]

    run(main())
