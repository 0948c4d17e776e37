"""The kernel writes " (deleted)" after the path of an unlinked file; a live file may be named so
too (issue 9 item 15). The suffix goes only when the event's file is really unlinked."""

from __future__ import annotations

from .test_trace import accesses, traced, workload


def test_a_live_file_named_like_a_deleted_one_keeps_its_name(pool, container) -> None:
    c = container({"/data/x (deleted)": b"x", "/data/x": b"other"},
                  workload("read:/data/x (deleted)", "read:/data/x"))
    _, records = traced(pool, c)
    assert accesses(records) == [("/data/x (deleted)", "open"), ("/data/x", "open")]


def test_unlinked_files_lose_exactly_the_kernel_suffix(pool, container) -> None:
    # The tracer is held until stop: every path is read back after the workload ended. /data/*
    # are in the image's lower layer (overlayfs keeps their link count), /tmpdir/0 in the upper.
    c = container({"/data/gone (deleted)": b"g", "/data/z": b"z", "/data/z (deleted)": b"planted"},
                  workload("read:/data/gone (deleted)", "rm:/data/gone (deleted)",
                           "read:/data/z", "rm:/data/z", "read:/data/z (deleted)",
                           "mkmany:/tmpdir:1", "read:/tmpdir/0", "rm:/tmpdir/0"))
    _, records = traced(pool, c, bounded_queue=True)
    assert accesses(records) == [("/data/gone (deleted)", "open"), ("/data/z", "open"),
                                 ("/data/z (deleted)", "open"), ("/tmpdir/0", "open")]
