"""The node model is bounded whatever the runtime peer sends: a Synchronize of many tiny pods
(MAX_SYNC_BYTES let one hold 1.3 GiB of records), and events adding pods and containers without
ever removing them (no limit at all before), are cut at MAX_MODEL_ENTRIES / MAX_MODEL_BYTES with
one line; the session reconnects and the resync replaces the model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nydus_top.model.node import EventKind
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import session as nri_session
from testkit.hostile_peer import Served, answer, run
from testkit.runtime_peer import container_msg, pod_msg

LIMIT = 6


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _dropped(tmp_path: Path, what: str) -> list[str]:
    return [f"NRI: dropping the connection to the runtime at {tmp_path / 'nri.sock'}: {what}; reconnecting"]


@pytest.mark.parametrize("over", [0, 1])
def test_a_synchronize_of_max_model_entries_passes_one_more_is_refused(
        tmp_path: Path, monkeypatch, caplog, over: int) -> None:
    monkeypatch.setattr(nri_session, "MAX_MODEL_ENTRIES", LIMIT)
    pods = [pod_msg(i) for i in range(LIMIT // 2 + over)]
    containers = [container_msg(i) for i in range(LIMIT // 2)]

    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            ans = await conn.call("Synchronize", api.SynchronizeRequest(pods=pods[:2], more=True).SerializeToString())
            assert ans.code == 0
            last = conn.send_call("Synchronize", api.SynchronizeRequest(
                pods=pods[2:], containers=containers, more=False).SerializeToString())
            if over:
                assert await conn.closed()
                await s.peer.accept()
                assert s.events == [] and not s.model.connected
            else:
                assert (await answer(conn, last)).more is False
                assert len(s.model.pods) + len(s.model.containers) == LIMIT

    run(main())
    assert errors(caplog) == (_dropped(tmp_path, f"Synchronize of more than {LIMIT} pods and containers "
                                       "(MAX_MODEL_ENTRIES) in 2 chunks") if over else [])


def _event(event: int, i: int, args: tuple[str, ...] = ()) -> bytes:
    container = container_msg(i)
    if args:
        del container.args[:]
        container.args.extend(args)
    return api.StateChangeEvent(event=event, pod=pod_msg(i), container=container).SerializeToString()


def test_events_adding_entries_past_max_model_entries_drop_the_connection(tmp_path: Path, monkeypatch,
                                                                          caplog) -> None:
    monkeypatch.setattr(nri_session, "MAX_MODEL_ENTRIES", LIMIT)

    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            assert (await conn.call("Synchronize", b"")).code == 0
            for i in range(LIMIT // 2):  # a pod and its container each: exactly at the limit
                assert (await conn.call("StateChange", _event(api.START_CONTAINER, i))).code == 0
            assert len(s.model.pods) + len(s.model.containers) == LIMIT
            conn.send_call("StateChange", _event(api.START_CONTAINER, LIMIT))
            assert await conn.closed()
            conn = await s.peer.accept()  # reconnected; the resync replaces the model
            await conn.accept_registration()
            assert (await conn.call("Configure", b"")).code == 0
            assert (await conn.call("Synchronize", b"")).code == 0
            assert len(s.model.pods) + len(s.model.containers) == 0

    run(main())
    (line,) = errors(caplog)
    assert line.startswith(f"NRI: dropping the connection to the runtime at {tmp_path / 'nri.sock'}: "
                           f"{LIMIT + 2} pods and containers of ")
    assert line.endswith(f"bytes, more than {LIMIT} (MAX_MODEL_ENTRIES) or {nri_session.MAX_MODEL_BYTES} bytes "
                         "(MAX_MODEL_BYTES); reconnecting")


def test_events_holding_more_than_max_model_bytes_drop_the_connection(tmp_path: Path, monkeypatch, caplog) -> None:
    big = "x" * 1000

    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            assert (await conn.call("Synchronize", b"")).code == 0
            assert (await conn.call("StateChange", _event(api.START_CONTAINER, 0, args=(big,)))).code == 0
            at_limit = s.model.nbytes
            monkeypatch.setattr(nri_session, "MAX_MODEL_BYTES", at_limit)
            # The same container again (replaced, not added): still at the limit.
            assert (await conn.call("StateChange", _event(api.START_CONTAINER, 0, args=(big,)))).code == 0
            assert s.model.nbytes == at_limit
            conn.send_call("StateChange", _event(api.START_CONTAINER, 0, args=(big + "y",)))
            assert await conn.closed()
            await s.peer.accept()

    run(main())
    (line,) = errors(caplog)
    assert "bytes (MAX_MODEL_BYTES); reconnecting" in line and " pods and containers of " in line


def test_removals_give_their_bytes_back(tmp_path: Path) -> None:
    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            assert (await conn.call("Synchronize", api.SynchronizeRequest(
                pods=[pod_msg(0)], containers=[container_msg(0)]).SerializeToString())).code == 0
            synced = s.model.nbytes
            assert synced > 0
            for i in (1, 2):
                assert (await conn.call("StateChange", _event(api.START_CONTAINER, i))).code == 0
            assert (await conn.call("StateChange", _event(api.REMOVE_CONTAINER, 2))).code == 0
            remove_pod = api.StateChangeEvent(event=api.REMOVE_POD_SANDBOX, pod=pod_msg(2)).SerializeToString()
            assert (await conn.call("StateChange", remove_pod)).code == 0
            remove_pod = api.StateChangeEvent(event=api.REMOVE_POD_SANDBOX, pod=pod_msg(1)).SerializeToString()
            assert (await conn.call("StateChange", remove_pod)).code == 0
            assert s.model.nbytes == synced and EventKind.POD_REMOVE in s.events

    run(main())
