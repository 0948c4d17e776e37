"""The Synchronize limits at their edges (nydus_top/nri/session.py): containers of earlier chunks
count toward MAX_MODEL_ENTRIES, and a second Synchronize on one connection starts counting its
chunks and bytes from nothing. Written to kill the mutants scripts/mutation found surviving
(issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import session as nri_session
from testkit.hostile_peer import Served, answer, run, sync_payload
from testkit.runtime_peer import container_msg, pod_msg


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _dropped(tmp_path: Path, what: str) -> list[str]:
    return [f"NRI: dropping the connection to the runtime at {tmp_path / 'nri.sock'}: {what}; reconnecting"]


def test_containers_of_earlier_chunks_count_toward_max_model_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(nri_session, "MAX_MODEL_ENTRIES", 6)

    async def main() -> None:
        async with Served(tmp_path) as s:
            conn = await s.registered()
            first = api.SynchronizeRequest(pods=[pod_msg(0)], containers=[container_msg(i, pod=0) for i in range(3)],
                                           more=True)
            assert (await conn.call("Synchronize", first.SerializeToString())).code == 0
            last = api.SynchronizeRequest(pods=[pod_msg(1)], containers=[container_msg(i, pod=1) for i in (4, 5)])
            conn.send_call("Synchronize", last.SerializeToString())  # 4 + 3: one more than the limit
            assert await conn.closed()
            await s.peer.accept()
            assert s.events == [] and not s.model.connected

    run(main())
    assert _errors(caplog) == _dropped(tmp_path, "Synchronize of more than 6 pods and containers (MAX_MODEL_ENTRIES) "
                                                 "in 2 chunks")


def test_a_second_synchronize_counts_its_own_chunks_and_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(nri_session, "MAX_SYNC_BYTES", 3000)

    async def main() -> None:
        async with Served(tmp_path) as s:
            conn = await s.registered()
            once = conn.send_call("Synchronize", sync_payload(2000, more=False, name="once"))
            assert (await answer(conn, once)).more is False
            assert (await conn.call("Synchronize", sync_payload(1000, name="a"))).payload == nri_session.MORE
            again = conn.send_call("Synchronize", sync_payload(2000, more=False, name="b"))  # 3000: at the limit
            assert (await answer(conn, again)).more is False
            assert sorted(s.model.pods) == ["a", "b"]
            assert (await conn.call("Synchronize", sync_payload(1000, name="c"))).payload == nri_session.MORE
            conn.send_call("Synchronize", sync_payload(2001, more=False, name="d"))
            assert await conn.closed()
            await s.peer.accept()

    run(main())
    assert _errors(caplog) == _dropped(tmp_path, "Synchronize of more than 3000 bytes (MAX_SYNC_BYTES) in 2 chunks")
