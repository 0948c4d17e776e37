"""The range tracer against the real kernel: pre-access events on a loop ext4 lower layer, reads
made through overlayfs by home-made containers."""

from __future__ import annotations

import os

import pytest

from nydus_top.range_tracer import RangesUnavailable, start_ranges
from nydus_top.ranges import RangeSet

MiB = 1 << 20


def workload(*steps: str) -> list[str]:
    return ["signal:{note}", "wait:{go}", *steps, "signal:{note}", "wait:{go}"]


def ranged(pool, c):
    """Arm ranges on the set-up container, let the workload run, stop and return the trace."""
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    trace.stop()
    return trace


def test_exact_ranges_of_pread_read_and_readv_through_overlayfs(pool, container, image) -> None:
    c = container(image, {"/data/big": 64 * MiB, "/data/small": b"s" * 5000, "/data/vec": 8 * MiB},
                  workload("pread:/data/big:409600:4096", "pread:/data/big:40000000:100",
                           "read:/data/small", "readv:/data/vec:1048576:4096,8192"))
    trace = ranged(pool, c)
    book = trace.book
    # The kernel reports buffered reads by the pages they touch: 100 bytes at 40000000 is page 9765.
    assert book.get("/data/big") == RangeSet([(409600, 413696), (9765 * 4096, 9766 * 4096)])
    assert "/data/small" in book and book.get("/data/small") is None  # read whole
    assert book.get("/data/vec") == RangeSet([(MiB, MiB + 12288)])
    assert trace.collector.end is not None and trace.collector.end.marks_left == 0
