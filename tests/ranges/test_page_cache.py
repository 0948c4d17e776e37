"""The page-cache fallback for short-lived mappings (nydus_top.tracing.page_cache): cachestat on
real files of the machine's file system, the walk of stacked layers and its limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nydus_top.lists.ranges import RangeSet
from nydus_top.recording.recorder import mapped_notes
from nydus_top.tracing import page_cache
from nydus_top.tracing.page_cache import CacheSnapshot, minus
from nydus_top.tracing.range_tracer import RangeCollector, parse_range_line

PAGE = page_cache.PAGE


def _file(path: Path, size: int) -> None:
    """A file of ``size`` bytes, out of the page cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _touch(path: Path, *offsets: int) -> None:
    """Bring the pages at ``offsets`` into the cache, no readahead around them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in offsets:
            os.pread(fd, 1, off)
    finally:
        os.close(fd)


def _lines(snapshot: CacheSnapshot) -> list[dict]:
    return [json.loads(line) for line in snapshot.lines().splitlines()]


def test_pages_cached_since_the_snapshot_are_one_line_per_file_of_the_top_layer(tmp_path: Path) -> None:
    top, low = tmp_path / "top", tmp_path / "low"
    for layer in (top, low):
        _file(layer / "d/a", 64 * PAGE)
    _file(low / "b", 10 * PAGE + 100)
    _file(top / "c", 8 * PAGE)
    _touch(top / "c", 0)  # cached before: never new
    snapshot = CacheSnapshot((str(top), str(low)))
    _touch(top / "d/a", 5 * PAGE, 40 * PAGE)
    _touch(low / "d/a", 20 * PAGE)  # hidden by the top layer's /d/a
    _touch(low / "b", 10 * PAGE)  # the last page: clipped to the size
    _touch(top / "c", 0, 3 * PAGE)
    got = {line["cached"]: line["ranges"] for line in _lines(snapshot)}
    assert got == {"/d/a": [[5 * PAGE, 6 * PAGE], [40 * PAGE, 41 * PAGE]], "/b": [[10 * PAGE, 10 * PAGE + 100]],
                   "/c": [[3 * PAGE, 4 * PAGE]]}


def test_minus_keeps_what_was_not_there_before() -> None:
    now = RangeSet([(0, 100), (200, 400)])
    assert minus(now, RangeSet([(50, 250), (300, 310)])) == RangeSet([(0, 50), (250, 300), (310, 400)])
    assert minus(now, None) == now


def test_at_the_file_limit_the_walk_stops_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_cache, "MAX_FILES", 2)
    for name in ("a", "b"):
        _file(tmp_path / name, PAGE)
    assert _lines(CacheSnapshot((str(tmp_path),))) == []  # at the limit: all seen
    _file(tmp_path / "c", PAGE)
    assert _lines(CacheSnapshot((str(tmp_path),))) == [{"cached": "", "why": "page cache: more than 2 files"}]


def test_at_the_call_limit_the_walk_stops_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _file(tmp_path / "a", 8 * PAGE)
    _touch(tmp_path / "a", 2 * PAGE)  # mixed: halving takes 7 calls (1 + 2 + 2 + 2)
    monkeypatch.setattr(page_cache, "MAX_CALLS", 7)
    assert _lines(CacheSnapshot((str(tmp_path),))) == []
    monkeypatch.setattr(page_cache, "MAX_CALLS", 6)
    assert _lines(CacheSnapshot((str(tmp_path),))) == [{"cached": "", "why": "page cache: more than 6 cachestat calls"}]


def test_a_file_with_more_runs_than_the_limit_is_left_out_and_said(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_cache, "MAX_RUNS", 2)
    _file(tmp_path / "a", 16 * PAGE)
    snapshot = CacheSnapshot((str(tmp_path),))
    _touch(tmp_path / "a", 0, 4 * PAGE)  # two runs: at the limit
    assert _lines(snapshot) == [{"cached": "/a", "ranges": [[0, PAGE], [4 * PAGE, 5 * PAGE]]}]
    _touch(tmp_path / "a", 8 * PAGE)  # three
    assert _lines(snapshot) == [{"cached": "", "why": "page cache: 1 file with more than 2 runs of cached pages"}]


def test_what_the_page_cache_could_not_observe_is_said_with_the_mapped_bytes() -> None:
    collector = RangeCollector()
    collector.add([parse_range_line(b'{"cached": "", "why": "page cache: more than 2 files"}')])
    assert mapped_notes(collector) == ["mapped: 0 B", "short-lived mappings unobserved: page cache: more than 2 files"]


def test_cached_pages_join_a_file_only_when_some_lie_apart_from_what_was_recorded() -> None:
    collector = RangeCollector()
    collector.add([parse_range_line(b'{"file": 1, "path": "/r", "size": 1048576}'),
                   parse_range_line(b'{"file": 1, "off": 8192, "len": 100}'),
                   parse_range_line(b'{"file": 2, "path": "/m", "size": 1048576}'),
                   parse_range_line(b'{"file": 2, "off": 8192, "len": 100}')])
    collector.add([parse_range_line(b'{"cached": "/r", "ranges": [[0, 4096], [8192, 65536]]}'),  # ours, readahead
                   parse_range_line(b'{"cached": "/m", "ranges": [[8192, 65536], [524288, 528384]]}'),
                   parse_range_line(b'{"cached": "/none", "ranges": [[0, 4096]]}')])  # no range data: whole
    assert collector.book.get("/r") == RangeSet([(8192, 8292)])
    assert collector.book.get("/m") == RangeSet([(8192, 65536), (524288, 528384)])
    assert "/none" not in collector.book
    assert collector.cached_bytes() == 65536 - 8292 + 4096
