"""NRI's connection multiplexer (containerd/nri pkg/net/multiplex), sans-IO.

One UNIX stream socket carries several logical connections as frames of an 8-byte header
(big-endian uint32 connection id, uint32 payload length) and the payload. Connection 1 carries
the Plugin service (the runtime calls us), connection 2 the Runtime service (we call it).
Frame boundaries mean nothing to ttrpc: each connection is a byte stream.
"""

from __future__ import annotations

import struct

from nydus_top.nri.errors import LimitExceeded, ProtocolError

HEADER = struct.Struct(">II")
PLUGIN_CONN = 1
RUNTIME_CONN = 2
CONNS = frozenset((PLUGIN_CONN, RUNTIME_CONN))
HTTP2_SETTINGS = 4  # frame type an HTTP/2 server sends first (see not_nri)
# The Go mux's limit since NRI v0.7 (maxPayloadSize): a ttrpc header and ttrpc's largest message
# (10 + 4 MiB). v0.6.1 read up to 1 << 24, but its ttrpc never wrote a frame longer than this.
MAX_PAYLOAD = 10 + (4 << 20)
# Go ttrpc reads each connection through a 4096-byte bufio.Reader and the mux hands a whole
# frame to every Read, failing with ENOMEM when the frame exceeds the reader's buffer.
GO_READ_BUFFER = 4096


def encode_frames(conn_id: int, data: bytes) -> bytes:
    """Frame one ttrpc message of ``data`` for ``conn_id`` so that a Go peer can read it.

    Up to 4096 bytes go in one frame. A longer message goes out as Go's own bufio.Writer sends
    it: a first frame of 4096 bytes, which fills the reader's buffer, then the rest in one frame,
    which the reader copies straight into the message buffer it has sized by then.
    """
    if len(data) <= GO_READ_BUFFER:
        return HEADER.pack(conn_id, len(data)) + data
    head, rest = data[:GO_READ_BUFFER], data[GO_READ_BUFFER:]
    return HEADER.pack(conn_id, len(head)) + head + HEADER.pack(conn_id, len(rest)) + rest


def not_nri(conn_id: int) -> str:
    """Why a peer whose first frame names no NRI connection is not NRI. An HTTP/2 server (gRPC,
    as containerd's API socket is) begins with a SETTINGS frame: 3 bytes of length, type 4."""
    if conn_id & 0xFF == HTTP2_SETTINGS and (conn_id >> 8) % 6 == 0:
        return "this is not an NRI socket (is it containerd's API socket?)"
    return f"this is not an NRI socket (its first mux frame is for unknown connection {conn_id})"


class Demux:
    """Splits the socket's byte stream into per-connection bytes.

    Payload bytes are passed on as they arrive, a frame possibly in several pieces: ttrpc reads
    each connection as a stream, so nothing is gained by holding a large frame back whole.
    """

    def __init__(self) -> None:
        self._framed = False  # a frame for an NRI connection has been read
        self._header = b""  # an incomplete frame header
        self._conn = 0  # connection of the frame being received
        self._left = 0  # its payload bytes still to come

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes read from the socket; return ``(conn_id, payload bytes)`` pieces, in order.

        Raises ProtocolError for a frame on a connection NRI does not define or one longer
        than any runtime sends.
        """
        out: list[tuple[int, bytes]] = []
        view = memoryview(data)
        off, end = 0, len(data)
        while off < end:
            if self._left:
                n = min(self._left, end - off)
                whole = off == 0 and n == end  # a read inside one large frame: no copy
                out.append((self._conn, data if whole else bytes(view[off : off + n])))
                self._left -= n
                off += n
                continue
            need = HEADER.size - len(self._header)
            self._header += view[off : off + need]
            off += min(need, end - off)
            if len(self._header) < HEADER.size:
                break
            conn_id, length = HEADER.unpack(self._header)
            self._header = b""
            if conn_id not in CONNS:
                raise ProtocolError(not_nri(conn_id) if not self._framed else
                                    f"mux frame for unknown connection {conn_id}")
            self._framed = True
            if length > MAX_PAYLOAD:
                raise LimitExceeded(f"mux frame of {length} bytes exceeds the limit of {MAX_PAYLOAD} (MAX_PAYLOAD)")
            self._conn, self._left = conn_id, length
        return out
