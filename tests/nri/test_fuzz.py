"""Property-based fuzzing of the decoder: whatever arrives, only ProtocolError may escape."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.errors import ProtocolError
from nydus_top.nri.protocol import Call, PluginProtocol
from testkit.frames import frames_dir

TRUNKS = [(frames_dir() / s / "trunk-r2p.bin").read_bytes() for s in ("A-idle", "B-sync", "C-large")]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_all(chunks: list[bytes]) -> None:
    proto = PluginProtocol()
    proto.call("RegisterPlugin", b"", 0)  # opens stream 1, as a real session does
    try:
        for chunk in chunks:
            for ev in proto.receive(chunk):
                if isinstance(ev, Call):
                    # What the session does next with a call's payload must be safe as well.
                    ttrpc.parse(api.StateChangeEvent, ev.payload)
                    ttrpc.parse(api.SynchronizeRequest, ev.payload)
    except ProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes(chunks: list[bytes]) -> None:
    feed_all(chunks)


@st.composite
def framed_messages(draw) -> bytes:
    """Well-formed mux and ttrpc headers around arbitrary bodies, so decoding goes deep."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        conn = draw(st.sampled_from([1, 1, 2, 0, 7]))
        stream = draw(st.integers(0, 9))
        msg_type = draw(st.sampled_from([1, 1, 2, 3, 0]))
        body = draw(st.binary(max_size=200) | st.builds(
            lambda m, p: ttrpc.encode_request("nri.pkg.api.v1alpha1.Plugin", m, p, 1),
            st.sampled_from(["StateChange", "Synchronize", "Nope"]), st.binary(max_size=200)))
        out += mux.encode_frames(conn, ttrpc.encode_message(stream, msg_type, body, draw(st.integers(0, 255))))
    return out


@FUZZ
@given(framed_messages(), st.integers(1, 64))
def test_structured_frames(wire: bytes, step: int) -> None:
    feed_all([wire[i : i + step] for i in range(0, len(wire), step)])


@FUZZ
@given(st.sampled_from(TRUNKS), st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 20000))
def test_mutated_real_traffic(trunk: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(trunk)
    for pos, value in flips:
        data[pos % len(data)] = value
    feed_all([bytes(data[: cut % len(data)]), bytes(data[cut % len(data) :])])
