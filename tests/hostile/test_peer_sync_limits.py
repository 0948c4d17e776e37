"""Item 5 of issue 9: a runtime peer cannot grow us with endless or oversized messages.

Limits (each with a test exactly at it and one byte over): mux.MAX_PAYLOAD (one frame),
ttrpc.MAX_MESSAGE (one message), session.MAX_SYNC_BYTES (all chunks of one Synchronize).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nydus_top.model.node import EventKind
from nydus_top.nri import mux, ttrpc
from nydus_top.nri import session as nri_session
from nydus_top.nri.errors import LimitExceeded
from testkit.hostile_peer import Served, answer, run, send_request_body, sync_payload, sync_request

CHUNK = 4 << 20  # the largest chunk containerd sends: ttrpc's limit (minus the envelope)


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_go_limits_are_the_numbers_of_containerd_nri_and_ttrpc() -> None:
    assert ttrpc.MAX_MESSAGE == 4 * 1024 * 1024  # containerd/ttrpc channel.go messageLengthMax
    assert mux.MAX_PAYLOAD == 10 + ttrpc.MAX_MESSAGE  # containerd/nri multiplex maxPayloadSize


def test_a_mux_frame_of_max_payload_passes_one_byte_more_is_refused() -> None:
    assert mux.Demux().feed(mux.HEADER.pack(mux.PLUGIN_CONN, mux.MAX_PAYLOAD)) == []
    with pytest.raises(LimitExceeded, match=rf"mux frame of {mux.MAX_PAYLOAD + 1} bytes exceeds the limit "
                       rf"of {mux.MAX_PAYLOAD} \(MAX_PAYLOAD\)"):
        mux.Demux().feed(mux.HEADER.pack(mux.PLUGIN_CONN, mux.MAX_PAYLOAD + 1))


def test_a_ttrpc_message_of_max_message_passes_one_byte_more_is_refused(tmp_path: Path, caplog) -> None:
    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            stream = send_request_body(conn, sync_request(ttrpc.MAX_MESSAGE, more=False))
            assert (await answer(conn, stream)).more is False
            assert s.events == [EventKind.SYNC] and list(s.model.pods) == ["big"]
            send_request_body(conn, sync_request(ttrpc.MAX_MESSAGE + 1, more=False))
            assert await conn.closed()
            await s.peer.accept()  # and the session reconnects

    run(main())
    assert errors(caplog) == [f"NRI: dropping the connection to the runtime at {tmp_path / 'nri.sock'}: ttrpc "
                              f"message of {ttrpc.MAX_MESSAGE + 1} bytes exceeds the limit of {ttrpc.MAX_MESSAGE} "
                              f"(MAX_MESSAGE); reconnecting"]


@pytest.mark.parametrize("over", [0, 1])
def test_a_chunked_synchronize_of_max_sync_bytes_passes_one_byte_more_is_refused(
        tmp_path: Path, monkeypatch, caplog, over: int) -> None:
    sizes = (1000, 3000, 2000)
    monkeypatch.setattr(nri_session, "MAX_SYNC_BYTES", sum(sizes) - over)

    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            for i, size in enumerate(sizes[:-1]):
                ans = await conn.call("Synchronize", sync_payload(size, name=f"p{i}"))
                assert ans.code == 0 and ans.payload == nri_session.MORE
            last = conn.send_call("Synchronize", sync_payload(sizes[-1], more=False, name="last"))
            if over:
                assert await conn.closed()
                await s.peer.accept()
                assert s.events == [] and not s.model.connected
            else:
                assert (await answer(conn, last)).more is False
                assert s.events == [EventKind.SYNC] and sorted(s.model.pods) == ["last", "p0", "p1"]

    run(main())
    if over:
        assert errors(caplog) == [f"NRI: dropping the connection to the runtime at {tmp_path / 'nri.sock'}: "
                                  f"Synchronize of more than {sum(sizes) - 1} bytes (MAX_SYNC_BYTES) in 3 chunks; "
                                  f"reconnecting"]
    else:
        assert errors(caplog) == []


def test_endless_synchronize_chunks_are_cut_at_max_sync_bytes(tmp_path: Path, caplog) -> None:
    """The flood of issue 9: chunks with ``more = true`` forever, each as large as containerd's."""
    body = sync_request(CHUNK)
    payload = len(ttrpc.decode_request(body).payload)
    accepted = nri_session.MAX_SYNC_BYTES // payload

    async def main():
        async with Served(tmp_path) as s:
            conn = await s.registered()
            sent = 0
            while True:
                stream = send_request_body(conn, body)
                try:
                    assert (await answer(conn, stream)).more is True
                except EOFError:
                    break
                sent += 1
                assert sent <= accepted, "the session kept accepting chunks"
            assert sent == accepted
            await s.peer.accept()  # the next connection gets a fresh start
            assert s.events == []

    run(main())
    (line,) = errors(caplog)
    assert (f"Synchronize of more than {nri_session.MAX_SYNC_BYTES} bytes (MAX_SYNC_BYTES)"
            f" in {accepted + 1} chunks") in line
