"""The runtime's end of an NRI connection, scripted by a test, over a real UNIX socket.

It plays containerd's part with the same framing code a Go runtime's bytes were checked
against (test_wire.py), so session tests can provoke what containerd will not do on demand:
chunked syncs, malformed frames, unknown methods, slow answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.protocol import PLUGIN_SERVICE


@dataclass
class Answer:
    code: int
    message: str
    payload: bytes


class RuntimePeer:
    """Accepts plugin connections on ``path``; ``accept()`` returns one :class:`PeerConn`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conns: asyncio.Queue[PeerConn] = asyncio.Queue()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> RuntimePeer:
        self._server = await asyncio.start_unix_server(self._accepted, str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._conns.put(PeerConn(reader, writer))

    async def accept(self, timeout: float = 5.0) -> PeerConn:
        return await asyncio.wait_for(self._conns.get(), timeout)

    async def close(self) -> None:
        """Stop listening (as a dead containerd does) and remove the socket."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self.path.unlink(missing_ok=True)


class PeerConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.demux = mux.Demux()
        self.readers = {c: ttrpc.MessageReader() for c in mux.CONNS}
        self.inbox: dict[int, list[ttrpc.Message]] = {1: [], 2: []}
        self.next_stream = 1

    async def receive(self, conn: int, timeout: float = 5.0) -> ttrpc.Message:
        async def more() -> None:
            while not self.inbox[conn]:
                try:
                    data = await self.reader.read(1 << 16)
                except ConnectionResetError:  # closed by the plugin with our bytes unread
                    data = b""
                if not data:
                    raise EOFError("plugin closed the connection")
                for c, payload in self.demux.feed(data):
                    self.inbox[c].extend(self.readers[c].feed(payload))

        await asyncio.wait_for(more(), timeout)
        return self.inbox[conn].pop(0)

    async def closed(self, timeout: float = 5.0) -> bool:
        """Wait until the plugin closes the connection."""
        try:
            while True:
                await self.receive(1, timeout)
        except EOFError:
            return True

    async def accept_registration(self) -> api.RegisterPluginRequest:
        msg = await self.receive(2)
        req = ttrpc.decode_request(msg.data)
        assert (req.service, req.method) == ("nri.pkg.api.v1alpha1.Runtime", "RegisterPlugin")
        answer = ttrpc.encode_message(msg.stream_id, ttrpc.RESPONSE, ttrpc.encode_response())
        self.send_raw(mux.encode_frames(2, answer))
        return api.RegisterPluginRequest.FromString(req.payload)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send_call(self, method: str, payload: bytes = b"", timeout_nano: int = 2_000_000_000,
                  service: str = PLUGIN_SERVICE) -> int:
        stream = self.next_stream
        self.next_stream += 2
        body = ttrpc.encode_request(service, method, payload, timeout_nano)
        self.send_raw(mux.encode_frames(1, ttrpc.encode_message(stream, ttrpc.REQUEST, body)))
        return stream

    async def call(self, method: str, payload: bytes = b"", timeout_nano: int = 2_000_000_000,
                   service: str = PLUGIN_SERVICE, timeout: float = 5.0) -> Answer:
        stream = self.send_call(method, payload, timeout_nano, service)
        msg = await self.receive(1, timeout)
        assert msg.stream_id == stream and msg.type == ttrpc.RESPONSE
        resp = ttrpc.decode_response(msg.data)
        return Answer(resp.status.code, resp.status.message, resp.payload)

    async def handshake(self, pods=(), containers=()) -> int:
        """Registration, Configure and a one-chunk Synchronize, as containerd 1.7 does them."""
        await self.accept_registration()
        conf = await self.call("Configure", api.ConfigureRequest(runtime_name="peer").SerializeToString())
        assert conf.code == 0
        request = api.SynchronizeRequest(pods=pods, containers=containers)
        sync = await self.call("Synchronize", request.SerializeToString())
        assert sync.code == 0 and sync.payload == b""
        return api.ConfigureResponse.FromString(conf.payload).events

    def close(self) -> None:
        self.writer.close()


def pod_msg(i: int, **kw) -> api.PodSandbox:
    kw.setdefault("pid", 1000 + i)
    return api.PodSandbox(id=f"pod{i:04d}", name=f"pod-{i}", namespace="ns", uid=f"uid-{i}", **kw)


def container_msg(i: int, pod: int | None = None, **kw) -> api.Container:
    kw.setdefault("state", api.CONTAINER_RUNNING)
    return api.Container(
        id=f"ctr{i:04d}", pod_sandbox_id=f"pod{(i if pod is None else pod):04d}", name=f"c-{i}", pid=2000 + i,
        args=["/bin/app", f"--n={i}"], annotations={"io.kubernetes.cri.image-name": f"registry/app:{i}"}, **kw)
