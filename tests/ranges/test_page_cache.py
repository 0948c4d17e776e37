"""The page-cache fallback for short-lived mappings: runs of cached pages from cachestat on real
files (native/page_cache.c), and how the range collector uses the tracer's cache lines."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from nydus_top._native import ffi, lib
from nydus_top.lists import meta as listmeta
from nydus_top.lists.ranges import RangeSet
from nydus_top.recording.recorder import mapped_notes
from nydus_top.tracing.range_tracer import PAGE, RangeCollector, minus, parse_range_line
from testkit.layers import out_of_page_cache


def _file(path: Path, size: int) -> None:
    """A file of ``size`` bytes, out of the page cache."""
    with path.open("wb") as f:
        f.write(os.urandom(size))
        out_of_page_cache(f)


def _runs(path: Path, cap: int = 64, calls: int = 1000, *pages: int) -> tuple[int, list[tuple[int, int]], int]:
    """(result, runs, calls left) of nt_cached_runs after the given pages were read (no readahead)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in pages:
            os.pread(fd, 1, page * PAGE)
        out = ffi.new("unsigned long long[]", 2 * cap)
        left = ffi.new("long *", calls)
        n = lib.nt_cached_runs(fd, -(-os.fstat(fd).st_size // PAGE), PAGE, out, cap, left)
        return n, [(out[2 * i], out[2 * i + 1]) for i in range(max(n, 0))], left[0]
    finally:
        os.close(fd)


def test_cached_runs_are_found_by_halving_within_the_bounds(tmp_path: Path) -> None:
    _file(tmp_path / "f", 8 * PAGE)
    assert _runs(tmp_path / "f") == (0, [], 999)  # cold: one call
    # pages 2, 5 and 6: [0,8) [0,4) [0,2) [2,4) [2,3) [3,4) [4,8) [4,6) [4,5) [5,6) [6,8) [6,7) [7,8)
    assert _runs(tmp_path / "f", 64, 1000, 2, 5, 6) == (2, [(2, 3), (5, 7)], 1000 - 13)
    assert _runs(tmp_path / "f", 2, 13)[:2] == (2, [(2, 3), (5, 7)])  # at both limits
    assert _runs(tmp_path / "f", 1, 13)[0] == -errno.ENOSPC  # a run too many
    assert _runs(tmp_path / "f", 2, 12)[0] == -errno.E2BIG  # a call too many


def test_minus_keeps_what_was_not_there_before() -> None:
    now = RangeSet([(0, 100), (200, 400)])
    assert minus(now, RangeSet([(50, 250), (300, 310)])) == RangeSet([(0, 50), (250, 300), (310, 400)])
    assert minus(now, RangeSet()) == now


def _traced(*lines: bytes) -> RangeCollector:
    collector = RangeCollector()
    collector.add([parse_range_line(line) for line in lines])
    return collector


def test_cached_pages_join_a_file_only_when_some_lie_apart_from_what_was_recorded() -> None:
    collector = _traced(b'{"file": 1, "path": "/r", "size": 1048576}', b'{"file": 1, "cache0": []}',
                        b'{"file": 1, "off": 8192, "len": 100}',
                        b'{"file": 2, "path": "/m", "size": 1048576}', b'{"file": 2, "cache0": [[786432, 790528]]}',
                        b'{"file": 2, "off": 8192, "len": 100}',
                        b'{"file": 3, "path": "/w", "size": 1048576}', b'{"file": 3, "cache0": []}',
                        b'{"file": 3, "whole": "read"}',
                        # the end: /r only around its read and at 0 (our ELF check); /m apart too
                        b'{"file": 1, "cache1": [[0, 4096], [8192, 65536]]}',
                        b'{"file": 2, "cache1": [[8192, 65536], [524288, 528384], [786432, 790528]]}',
                        b'{"file": 3, "cache1": [[0, 1048576]]}')
    assert collector.book.get("/r") == RangeSet([(8192, 8292)])
    # cached before the trace (786432) is not the container's doing
    assert collector.book.get("/m") == RangeSet([(8192, 65536), (524288, 528384)])
    assert "/w" in collector.book and collector.book.get("/w") is None
    assert collector.cached_bytes() == 65536 - 8292 + 4096
    assert collector.cached.get("/r") is None and "/r" not in collector.cached


def test_files_whose_page_cache_was_not_followed_are_said_and_kept_in_the_metadata() -> None:
    collector = _traced(b'{"cache_missed": 3}')
    why = f"the page cache of 3 files seen was not followed (past {lib.NT_CACHE_FILES} files, too fragmented, or " \
          "no cachestat)"
    assert mapped_notes(collector) == ["mapped: 0 B", f"short-lived mappings unobserved: {why}"]
    meta = listmeta.ListMeta(cached=4096, cache_unobserved=why)
    assert listmeta.decode(listmeta.encode(meta)) == meta
