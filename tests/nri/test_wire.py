"""The wire layer against byte-exact traffic captured from containerd 1.7.24 (NRI 0.6.1)."""

from __future__ import annotations

import random

import pytest
from google.protobuf import json_format

from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.errors import ProtocolError
from nydus_top.nri.protocol import Call, PluginProtocol, Reply
from testkit.frames import all_captured, captured, frames_dir, scenarios

REQUEST_TYPES = {
    "RegisterPlugin": api.RegisterPluginRequest,
    "Configure": api.ConfigureRequest,
    "Synchronize": api.SynchronizeRequest,
    "StateChange": api.StateChangeEvent,
    "StopContainer": api.ContainerRequest,
}
RESPONSE_TYPES = {"RegisterPlugin": api.Empty, "Configure": api.ConfigureResponse}


def test_all_three_scenarios_are_present() -> None:
    assert scenarios() == ["A-idle", "B-sync", "C-large"], frames_dir()


def assert_subset_matches(ours: dict, theirs: dict, path: str = "") -> None:
    """Every field we decoded equals the captured one; every captured field we declare is decoded."""
    for key, value in ours.items():
        assert key in theirs, f"{path}{key} decoded but not in the capture"
        if isinstance(value, dict) and key not in ("labels", "annotations"):
            assert_subset_matches(value, theirs[key], f"{path}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            assert len(value) == len(theirs[key])
            for i, (a, b) in enumerate(zip(value, theirs[key], strict=True)):
                assert_subset_matches(a, b, f"{path}{key}[{i}].")
        else:
            assert value == theirs[key], f"{path}{key}: {value!r} != {theirs[key]!r}"


def decoded_dict(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, use_integers_for_enums=False)


@pytest.mark.parametrize("cap", all_captured(), ids=lambda c: f"{c.scenario}/{c.path.name}")
def test_every_captured_frame_decodes_byte_exactly(cap) -> None:
    meta = cap.meta
    frames = mux.Demux().feed(cap.data)
    assert sum(mux.HEADER.size + len(p) for _, p in frames) == len(cap.data) == meta["wire_bytes"]
    assert {conn for conn, _ in frames} == {meta["mux_conn"]}
    reader = ttrpc.MessageReader()
    messages = [m for _, p in frames for m in reader.feed(p)]
    assert len(messages) == 1, "one ttrpc message per captured file, whatever its framing"
    msg = messages[0]
    wire = meta["ttrpc"]
    assert (msg.stream_id, msg.flags, len(msg.data)) == (wire["stream"], wire["flags"], wire["len"])
    method = meta["method"]
    if meta["ttrpc"]["type"] == "req":
        assert msg.type == ttrpc.REQUEST
        req = ttrpc.decode_request(msg.data)
        assert (req.service, req.method, req.timeout_nano) == (meta["service"], method, meta["timeout_nano"])
        assert {kv.key: kv.value for kv in req.metadata} == meta["metadata"]
        payload = REQUEST_TYPES[method].FromString(req.payload)
        # Re-encoding what we decoded reproduces the runtime's bytes, framing included.
        reencoded = ttrpc.encode_request(req.service, req.method, req.payload, req.timeout_nano)
        if not req.metadata:
            assert reencoded == msg.data
    else:
        assert msg.type == ttrpc.RESPONSE
        resp = ttrpc.decode_response(msg.data)
        assert {"code": resp.status.code, "message": resp.status.message} == meta["status"]
        payload = RESPONSE_TYPES.get(method, api.Empty).FromString(resp.payload)
        assert ttrpc.encode_response(resp.payload, resp.status.code, resp.status.message) == msg.data
    assert_subset_matches(decoded_dict(payload), meta["payload"])
    # Framed again by us, the message is the captured bytes, including Go's split of > 4 KiB.
    rebuilt = mux.encode_frames(meta["mux_conn"], ttrpc.encode_message(msg.stream_id, msg.type, msg.data))
    assert rebuilt == cap.data


def test_container_fields_the_model_needs_are_decoded() -> None:
    start = next(c for c in captured("A-idle") if c.meta["method"] == "StateChange")
    frames = mux.Demux().feed(start.data)
    (msg,) = ttrpc.MessageReader().feed(frames[0][1])
    event = api.StateChangeEvent.FromString(ttrpc.decode_request(msg.data).payload)
    assert event.event == api.START_CONTAINER
    assert event.pod.name == "nri-probe-1" and event.pod.namespace == "e2e" and event.pod.pid == 17796
    ctr = event.container
    assert ctr.name == "probe" and ctr.state == api.CONTAINER_CREATED and ctr.pid == 17829
    assert ctr.annotations["io.kubernetes.cri.image-name"] == "docker.io/library/probe:1.0"
    assert ctr.args[0] == "/entry/probe-init"
    assert ctr.created_at == 0  # NRI 0.6.1 has no timestamps


def test_large_message_spans_two_frames_and_our_split_matches_go() -> None:
    big = next(c for c in captured("C-large") if c.meta["method"] == "StateChange")
    frames = mux.Demux().feed(big.data)
    assert [len(p) for _, p in frames] == [4096, big.meta["ttrpc"]["len"] + 10 - 4096]
    reader = ttrpc.MessageReader()
    assert reader.feed(frames[0][1]) == []  # header + prefix only: nothing complete yet
    (msg,) = reader.feed(frames[1][1])
    assert len(msg.data) == 7309
    assert mux.encode_frames(1, ttrpc.encode_message(msg.stream_id, ttrpc.REQUEST, msg.data)) == big.data


@pytest.mark.parametrize("size", [0, 1, 4086, 4087, 4096, 4097, 9000, 200_000])
def test_encode_frames_never_sends_a_first_frame_over_4096(size: int) -> None:
    body = random.Random(size).randbytes(size)
    wire = mux.encode_frames(1, ttrpc.encode_message(7, ttrpc.RESPONSE, body))
    frames = mux.Demux().feed(wire)
    assert len(frames[0][1]) <= 4096
    assert len(frames) == (1 if size + 10 <= 4096 else 2)
    reader = ttrpc.MessageReader()
    assert [m for _, p in frames for m in reader.feed(p)] == [ttrpc.Message(7, ttrpc.RESPONSE, 0, body)]


def replay(scenario: str, chunking: random.Random | None = None):
    """Run a captured session through PluginProtocol the way the Go optimizer answered it.

    Returns what we received and the bytes we would have sent, in order.
    """
    caps = captured(scenario)
    reg = caps[0].meta
    proto = PluginProtocol()
    payload = api.RegisterPluginRequest(plugin_name="optimizer", plugin_idx="02").SerializeToString()
    stream, sent = proto.call("RegisterPlugin", payload, reg["timeout_nano"])
    assert stream == 1
    out = [sent]
    events: list[Call | Reply] = []
    trunk = (frames_dir() / scenario / "trunk-r2p.bin").read_bytes()
    pieces = [trunk]
    if chunking:
        cuts = sorted(chunking.sample(range(1, len(trunk)), 40))
        pieces = [trunk[a:b] for a, b in zip([0, *cuts], [*cuts, len(trunk)], strict=True)]
    answers = {c.meta["ttrpc"]["stream"]: c.meta for c in caps if c.meta["dir"] == "p2r" and c.meta["mux_conn"] == 1}
    for piece in pieces:
        for ev in proto.receive(piece):
            events.append(ev)
            if isinstance(ev, Call):
                ans = answers[ev.stream_id]
                body = b""
                if ev.method == "Configure":
                    body = api.ConfigureResponse(events=ans["payload"]["events"]).SerializeToString()
                out.append(proto.respond(ev.stream_id, body, ans["status"]["code"], ans["status"]["message"]))
    return events, out


@pytest.mark.parametrize("scenario", ["A-idle", "B-sync", "C-large"])
def test_replayed_session_reproduces_the_go_plugins_bytes(scenario: str) -> None:
    events, out = replay(scenario)
    r2p = [c.meta for c in captured(scenario) if c.meta["dir"] == "r2p"]
    assert [(type(e).__name__, e.stream_id) for e in events] == [
        ("Call" if m["ttrpc"]["type"] == "req" else "Reply", m["ttrpc"]["stream"]) for m in r2p
    ]
    assert b"".join(out) == (frames_dir() / scenario / "trunk-p2r.bin").read_bytes()


@pytest.mark.parametrize("seed", range(5))
def test_replay_is_independent_of_how_reads_split_the_stream(seed: int) -> None:
    whole_events, whole_out = replay("C-large")
    events, out = replay("C-large", random.Random(seed))
    assert events == whole_events and out == whole_out


def test_configure_may_arrive_before_the_register_reply() -> None:
    events, _ = replay("B-sync")
    assert isinstance(events[0], Call) and events[0].method == "Configure"
    assert isinstance(events[1], Reply) and events[1].stream_id == 1 and events[1].code == 0


def frame(conn: int, stream: int, msg_type: int, body: bytes = b"") -> bytes:
    return mux.encode_frames(conn, ttrpc.encode_message(stream, msg_type, body))


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (frame(3, 1, ttrpc.REQUEST), "unknown connection 3"),
        (frame(0, 1, ttrpc.REQUEST), "unknown connection 0"),
        (mux.HEADER.pack(1, mux.MAX_PAYLOAD + 1), "exceeds"),
        (mux.HEADER.pack(1, 10) + ttrpc.HEADER.pack((4 << 20) + 1, 1, 1, 0), "exceeds"),
        (frame(1, 1, 9), "unknown type 9"),
        (frame(1, 1, ttrpc.RESPONSE), "unexpected ttrpc message type 2 on the plugin"),
        (frame(1, 1, ttrpc.DATA), "unexpected ttrpc message type 3"),
        (frame(1, 2, ttrpc.REQUEST), "invalid ttrpc stream id 2"),
        (frame(1, 3, ttrpc.REQUEST) + frame(1, 3, ttrpc.REQUEST), "invalid ttrpc stream id 3"),
        (frame(2, 1, ttrpc.REQUEST), "unexpected ttrpc message type 1 on the runtime"),
        (frame(2, 5, ttrpc.RESPONSE), "stream 5, which we did not open"),
        (frame(1, 1, ttrpc.REQUEST, b"\x0a\x05ab"), "malformed Request"),
        (frame(1, 1, ttrpc.REQUEST, b"\xff"), "malformed Request"),
    ],
)
def test_unacceptable_input_raises_one_protocol_error(wire: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        PluginProtocol().receive(wire)


# What containerd's API socket (gRPC: HTTP/2) sends first: a SETTINGS frame of one setting.
HTTP2_SETTINGS = bytes.fromhex("000006040000000000000500004000")


def test_a_peer_that_is_not_nri_is_named_so_on_its_first_frame() -> None:
    with pytest.raises(ProtocolError) as err:
        PluginProtocol().receive(HTTP2_SETTINGS)
    assert str(err.value) == "this is not an NRI socket (is it containerd's API socket?)"
    first = r"^this is not an NRI socket \(its first mux frame is for unknown connection 3\)$"
    with pytest.raises(ProtocolError, match=first):
        PluginProtocol().receive(frame(3, 1, ttrpc.REQUEST))
    later = PluginProtocol()
    with pytest.raises(ProtocolError, match="^mux frame for unknown connection 1540$"):  # after NRI frames: a bad frame
        later.receive(frame(2, 1, ttrpc.RESPONSE, b"") + HTTP2_SETTINGS)


def test_incomplete_input_waits_for_more() -> None:
    proto = PluginProtocol()
    data = frame(1, 1, ttrpc.REQUEST, ttrpc.encode_request("s", "m", b"", 0))
    for i in range(len(data) - 1):
        assert proto.receive(data[i : i + 1]) == []
    assert proto.receive(data[-1:]) == [Call(1, "s", "m", b"", 0)]
