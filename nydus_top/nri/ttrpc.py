"""ttrpc framing and envelopes (containerd/ttrpc), sans-IO.

A ttrpc message is a 10-byte header (big-endian uint32 length, uint32 stream id, uint8 type,
uint8 flags) and ``length`` bytes of protobuf: a Request from the client or a Response from
the server. Clients use odd, strictly increasing stream ids; unary calls use flags 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from nydus_top.nri import nri_ttrpc_pb2 as pb
from nydus_top.nri.errors import ProtocolError

HEADER = struct.Struct(">IIBB")
REQUEST = 1
RESPONSE = 2
DATA = 3
MAX_MESSAGE = 4 << 20  # ttrpc's messageLengthMax

# gRPC status codes used here.
OK = 0
UNIMPLEMENTED = 12


@dataclass(frozen=True, slots=True)
class Message:
    """One ttrpc message: its header fields and the undecoded protobuf body."""

    stream_id: int
    type: int
    flags: int
    data: bytes


def encode_message(stream_id: int, msg_type: int, data: bytes, flags: int = 0) -> bytes:
    """Return the header and body of one ttrpc message."""
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"ttrpc message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(data), stream_id, msg_type, flags) + data


class MessageReader:
    """Reassembles ttrpc messages from one connection's byte stream, across any framing."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes of this connection; return the messages they complete, in order.

        Raises ProtocolError for a message longer than ttrpc allows or of an unknown type.
        """
        buf = self._buf
        buf += data
        messages: list[Message] = []
        off = 0
        view = memoryview(buf)
        try:
            while len(buf) - off >= HEADER.size:
                length, stream_id, msg_type, flags = HEADER.unpack_from(buf, off)
                if length > MAX_MESSAGE:
                    raise ProtocolError(f"ttrpc message of {length} bytes exceeds {MAX_MESSAGE}")
                if msg_type not in (REQUEST, RESPONSE, DATA):
                    raise ProtocolError(f"ttrpc message of unknown type {msg_type}")
                end = off + HEADER.size + length
                if end > len(buf):
                    break
                messages.append(Message(stream_id, msg_type, flags, bytes(view[off + HEADER.size : end])))
                off = end
        finally:
            view.release()
        del buf[:off]
        return messages


def encode_request(service: str, method: str, payload: bytes, timeout_nano: int) -> bytes:
    """Serialize a ttrpc Request envelope."""
    return pb.Request(
        service=service, method=method, payload=payload, timeout_nano=timeout_nano
    ).SerializeToString()


def decode_request(data: bytes) -> pb.Request:
    """Parse a ttrpc Request envelope."""
    return parse(pb.Request, data)


def encode_response(payload: bytes = b"", code: int = OK, message: str = "") -> bytes:
    """Serialize a ttrpc Response; like Go ttrpc, a success carries no status at all."""
    response = pb.Response(payload=payload)
    if code != OK:
        response.status.code = code
        response.status.message = message
    return response.SerializeToString()


def decode_response(data: bytes) -> pb.Response:
    """Parse a ttrpc Response envelope (an absent status means OK)."""
    return parse(pb.Response, data)


def parse(cls, data: bytes):
    """Parse protobuf ``data`` as ``cls``, raising ProtocolError for bytes that are not one."""
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ProtocolError(f"malformed {cls.DESCRIPTOR.name} message: {exc}") from None
