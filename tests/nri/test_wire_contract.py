"""The NRI wire's edges (nydus_top/nri/ttrpc.py, mux.py; sans-IO, so tested directly): messages
and frames at their limits, several messages in one piece of a byte stream, default answers.
Written to kill the mutants scripts/mutation found surviving (issue 18 item 21); each asserts
documented behaviour."""

from __future__ import annotations

import pytest

from nydus_top.nri import mux, ttrpc


def test_a_message_of_max_message_is_encoded_one_byte_more_is_refused() -> None:
    body = bytes(ttrpc.MAX_MESSAGE)
    wire = ttrpc.encode_message(3, ttrpc.REQUEST, body)
    assert wire[: ttrpc.HEADER.size] == ttrpc.HEADER.pack(ttrpc.MAX_MESSAGE, 3, ttrpc.REQUEST, 0)
    assert ttrpc.MessageReader().feed(wire) == [ttrpc.Message(3, ttrpc.REQUEST, 0, body)]
    with pytest.raises(ValueError, match=f"^ttrpc message of {ttrpc.MAX_MESSAGE + 1} bytes exceeds "
                                         f"{ttrpc.MAX_MESSAGE}$"):
        ttrpc.encode_message(3, ttrpc.REQUEST, body + b"x")


def test_the_rest_of_a_body_and_the_next_messages_in_one_piece_are_split_apart() -> None:
    first = ttrpc.encode_message(1, ttrpc.REQUEST, b"first body")
    second = ttrpc.encode_message(3, ttrpc.REQUEST, b"second")
    reader = ttrpc.MessageReader()
    assert reader.feed(first[:12]) == []  # the header and two bytes of the body
    assert reader.feed(first[12:] + second) == [ttrpc.Message(1, ttrpc.REQUEST, 0, b"first body"),
                                               ttrpc.Message(3, ttrpc.REQUEST, 0, b"second")]


def test_a_header_split_across_pieces_is_joined_exactly() -> None:
    first = ttrpc.encode_message(1, ttrpc.REQUEST, b"first body")
    second = ttrpc.encode_message(3, ttrpc.RESPONSE, b"second")
    reader = ttrpc.MessageReader()
    assert reader.feed(first[:4]) == []  # part of the header only
    assert reader.feed(first[4:] + second[:7]) == [ttrpc.Message(1, ttrpc.REQUEST, 0, b"first body")]
    assert reader.feed(second[7:]) == [ttrpc.Message(3, ttrpc.RESPONSE, 0, b"second")]


def test_an_empty_success_is_no_bytes_at_all_and_an_error_carries_its_status() -> None:
    assert ttrpc.encode_response() == b""
    failed = ttrpc.decode_response(ttrpc.encode_response(code=ttrpc.UNIMPLEMENTED))
    assert failed.status.code == ttrpc.UNIMPLEMENTED and failed.status.message == "" and failed.payload == b""


def test_a_message_of_4096_bytes_goes_in_one_frame_a_longer_one_in_two() -> None:
    """What a Go peer's 4096-byte reader takes whole (see mux.encode_frames)."""
    data = bytes(range(256)) * 16
    assert mux.encode_frames(2, data) == mux.HEADER.pack(2, 4096) + data
    assert mux.encode_frames(2, data + b"x") == mux.HEADER.pack(2, 4096) + data + mux.HEADER.pack(2, 1) + b"x"


def test_a_frame_header_split_across_reads_is_joined_exactly() -> None:
    wire = mux.encode_frames(1, b"payload") + mux.encode_frames(2, b"more")
    demux = mux.Demux()
    assert demux.feed(wire[:3]) == []  # part of the first header only
    assert demux.feed(wire[3:]) == [(1, b"payload"), (2, b"more")]
