"""A misbehaving runtime peer: what containerd will not do, done on purpose.

Builds on :mod:`testkit.runtime_peer` (a well-behaved runtime over a real UNIX socket) with
messages of an exact size, floods, and a session harness that records the model's events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nydus_top.model.node import EventKind, NodeModel
from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.protocol import PLUGIN_SERVICE
from nydus_top.nri.session import PluginSession
from testkit.runtime_peer import PeerConn, RuntimePeer


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sync_payload(size: int, more: bool = True, name: str = "big") -> bytes:
    """A SynchronizeRequest of exactly ``size`` bytes (at least 64): one pod padded by an annotation."""
    pad = size
    for _ in range(8):  # varint lengths settle in a step or two
        data = api.SynchronizeRequest(pods=[api.PodSandbox(id=name, annotations={"pad": "x" * pad})],
                                      more=more).SerializeToString()
        if len(data) == size:
            return data
        pad += size - len(data)
    raise ValueError(f"cannot make a Synchronize of {size} bytes")


def sync_request(body_size: int, more: bool = True) -> bytes:
    """A ttrpc Request envelope calling Synchronize of exactly ``body_size`` bytes."""
    payload_size = body_size
    for _ in range(8):
        body = ttrpc.encode_request(PLUGIN_SERVICE, "Synchronize", sync_payload(payload_size, more), 2_000_000_000)
        if len(body) == body_size:
            return body
        payload_size += body_size - len(body)
    raise ValueError(f"cannot make a request of {body_size} bytes")


def send_request_body(conn: PeerConn, body: bytes) -> int:
    """Send a ttrpc request of any size (no limit checked here); return its stream id."""
    stream = conn.next_stream
    conn.next_stream += 2
    message = ttrpc.HEADER.pack(len(body), stream, ttrpc.REQUEST, 0) + body
    conn.send_raw(mux.encode_frames(mux.PLUGIN_CONN, message))
    return stream


async def answer(conn: PeerConn, stream: int, timeout: float = 10.0) -> api.SynchronizeResponse:
    msg = await conn.receive(mux.PLUGIN_CONN, timeout)
    assert msg.stream_id == stream and msg.type == ttrpc.RESPONSE
    resp = ttrpc.decode_response(msg.data)
    assert resp.status.code == 0, resp.status
    return api.SynchronizeResponse.FromString(resp.payload)


class Served:
    """A PluginSession serving a :class:`RuntimePeer` in a task; the model's events are kept."""

    def __init__(self, tmp_path: Path, **kw) -> None:
        self.path = tmp_path / "nri.sock"
        self.model = NodeModel()
        self.events: list[EventKind] = []
        self.model.subscribe(lambda ev: self.events.append(ev.kind))
        kw.setdefault("backoff", (0.02, 0.1))
        self.session = PluginSession(self.model, str(self.path), **kw)

    async def __aenter__(self) -> Served:
        self.peer = await RuntimePeer(self.path).__aenter__()
        self.task = asyncio.ensure_future(self.session.run_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.session.stop()
        await asyncio.wait_for(self.task, 5)
        await self.peer.__aexit__()

    async def registered(self) -> PeerConn:
        """The next connection, registered and configured (not yet synchronized)."""
        conn = await self.peer.accept()
        await conn.accept_registration()
        assert (await conn.call("Configure", b"")).code == 0
        return conn
