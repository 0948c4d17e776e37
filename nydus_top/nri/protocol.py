"""The plugin side of an NRI connection as a sans-IO state machine.

Bytes read from the socket go into :meth:`PluginProtocol.receive`, which returns the runtime's
calls on connection 1 (:class:`Call`) and its replies to our calls on connection 2
(:class:`Reply`); the methods that produce bytes return what must be written to the socket.
Anything the runtime may not send raises :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nydus_top.nri import mux, ttrpc
from nydus_top.nri.errors import ProtocolError

PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime"


@dataclass(frozen=True, slots=True)
class Call:
    """A request of the runtime to our Plugin service."""

    stream_id: int
    service: str
    method: str
    payload: bytes
    timeout_nano: int


@dataclass(frozen=True, slots=True)
class Reply:
    """The runtime's response to one of our calls; ``code`` 0 is success."""

    stream_id: int
    code: int
    message: str
    payload: bytes


class PluginProtocol:
    """Wire state of one plugin connection: the mux, both ttrpc streams, stream ids."""

    def __init__(self) -> None:
        self._demux = mux.Demux()
        self._readers = {conn: ttrpc.MessageReader() for conn in mux.CONNS}
        self._last_call_stream = 0  # highest stream id the runtime used on connection 1
        self._next_stream = 1  # next stream id for our calls on connection 2
        self._pending: set[int] = set()

    def receive(self, data: bytes) -> list[Call | Reply]:
        """Feed bytes from the socket; return the calls and replies they complete."""
        out: list[Call | Reply] = []
        for conn_id, payload in self._demux.feed(data):
            for msg in self._readers[conn_id].feed(payload):
                out.append(self._accept_call(msg) if conn_id == mux.PLUGIN_CONN else self._accept_reply(msg))
        return out

    def _accept_call(self, msg: ttrpc.Message) -> Call:
        if msg.type != ttrpc.REQUEST:
            raise ProtocolError(f"unexpected ttrpc message type {msg.type} on the plugin connection")
        if msg.stream_id % 2 == 0 or msg.stream_id <= self._last_call_stream:
            raise ProtocolError(f"invalid ttrpc stream id {msg.stream_id} for a runtime call")
        self._last_call_stream = msg.stream_id
        req = ttrpc.decode_request(msg.data)
        return Call(msg.stream_id, req.service, req.method, req.payload, req.timeout_nano)

    def _accept_reply(self, msg: ttrpc.Message) -> Reply:
        if msg.type != ttrpc.RESPONSE:
            raise ProtocolError(f"unexpected ttrpc message type {msg.type} on the runtime connection")
        if msg.stream_id not in self._pending:
            raise ProtocolError(f"ttrpc response for stream {msg.stream_id}, which we did not open")
        self._pending.discard(msg.stream_id)
        resp = ttrpc.decode_response(msg.data)
        return Reply(msg.stream_id, resp.status.code, resp.status.message, resp.payload)

    def call(self, method: str, payload: bytes, timeout_nano: int) -> tuple[int, bytes]:
        """Call ``method`` of the Runtime service; return its stream id and the bytes to send."""
        stream_id = self._next_stream
        self._next_stream += 2
        self._pending.add(stream_id)
        body = ttrpc.encode_request(RUNTIME_SERVICE, method, payload, timeout_nano)
        return stream_id, mux.encode_frames(mux.RUNTIME_CONN, ttrpc.encode_message(stream_id, ttrpc.REQUEST, body))

    def respond(self, stream_id: int, payload: bytes = b"", code: int = ttrpc.OK, message: str = "") -> bytes:
        """Return the bytes answering the runtime's call on ``stream_id``."""
        body = ttrpc.encode_response(payload, code, message)
        return mux.encode_frames(mux.PLUGIN_CONN, ttrpc.encode_message(stream_id, ttrpc.RESPONSE, body))
