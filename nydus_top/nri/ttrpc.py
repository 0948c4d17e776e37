"""ttrpc framing and envelopes (containerd/ttrpc), sans-IO.

A ttrpc message is a 10-byte header (big-endian uint32 length, uint32 stream id, uint8 type,
uint8 flags) and ``length`` bytes of protobuf: a Request from the client or a Response from
the server. Clients use odd, strictly increasing stream ids; unary calls use flags 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from nydus_top.nri import nri_ttrpc_pb2 as pb
from nydus_top.nri.errors import LimitExceeded, ProtocolError

HEADER = struct.Struct(">IIBB")
REQUEST = 1
RESPONSE = 2
DATA = 3
MAX_MESSAGE = 4 << 20  # Go ttrpc's messageLengthMax (channel.go): a body of up to 4 MiB, header excluded

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
        self._header = b""  # an incomplete message header
        self._current: tuple[int, int, int] | None = None  # stream id, type, flags
        self._chunks: list[bytes] = []
        self._left = 0  # body bytes still to come

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes of this connection; return the messages they complete, in order.

        Raises ProtocolError for a message longer than ttrpc allows or of an unknown type.
        """
        out: list[Message] = []
        view = memoryview(data)
        off, end = 0, len(data)
        while True:
            if self._current is not None:
                n = min(self._left, end - off)
                if n:
                    whole = off == 0 and n == end  # the common case: no copy
                    self._chunks.append(data if whole else view[off : off + n].tobytes())
                    self._left -= n
                    off += n
                if self._left:
                    break
                body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                out.append(Message(*self._current, body))
                self._current, self._chunks = None, []
            if off >= end:
                break
            need = HEADER.size - len(self._header)
            self._header += view[off : off + need]
            off += min(need, end - off)
            if len(self._header) < HEADER.size:
                break
            length, stream_id, msg_type, flags = HEADER.unpack(self._header)
            self._header = b""
            if length > MAX_MESSAGE:
                raise LimitExceeded(f"ttrpc message of {length} bytes exceeds the limit of {MAX_MESSAGE} (MAX_MESSAGE)")
            if msg_type not in (REQUEST, RESPONSE, DATA):
                raise ProtocolError(f"ttrpc message of unknown type {msg_type}")
            self._current, self._left = (stream_id, msg_type, flags), length
        return out


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
    if code == OK and not payload:
        return b""  # the usual answer, and what an empty success serializes to
    response = pb.Response(payload=payload)
    if code != OK:
        response.status.code = code
        response.status.message = message
    return response.SerializeToString()


def decode_response(data: bytes) -> pb.Response:
    """Parse a ttrpc Response envelope (an absent status means OK)."""
    return parse(pb.Response, data)


_M = TypeVar("_M", bound=ProtoMessage)


def parse(cls: type[_M], data: bytes) -> _M:
    """Parse protobuf ``data`` as ``cls``, raising ProtocolError for bytes that are not one."""
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ProtocolError(f"malformed {cls.DESCRIPTOR.name} message: {exc}") from None
