"""Range sets, rounding to a granularity, range books, and ranges kept through save/load/merge."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_top.lists.files import (
    ListFileError,
    load_list,
    load_range_list,
    ranges_path,
    render,
    save_list,
    save_range_list,
)
from nydus_top.lists.ranges import RangeBook, RangeSet, prefetch_bytes, prefetch_ranges
from nydus_top.model.records import ListedFile

MiB = 1 << 20


def test_adding_merges_overlapping_and_touching_intervals() -> None:
    r = RangeSet()
    assert r.add(100, 200) == 100
    assert r.add(300, 400) == 100
    assert r.add(150, 250) == 50  # overlaps the first
    assert r.add(250, 300) == 50  # touches both: one interval
    assert list(r) == [(100, 400)]
    assert r.add(0, 10) == 10 and r.add(10, 10) == 0 and r.add(120, 130) == 0
    assert list(r) == [(0, 10), (100, 400)] and r.bytes == 310
    assert r.add(5, 1000) == 690 and list(r) == [(0, 1000)]


def test_union_is_symmetric_and_leaves_its_operands() -> None:
    a, b = RangeSet([(0, 10), (50, 60)]), RangeSet([(5, 55), (100, 110)])
    assert a.union(b) == b.union(a) == RangeSet([(0, 60), (100, 110)])
    assert a == RangeSet([(0, 10), (50, 60)])


def test_rounding_out_to_chunks_and_clipping_to_the_size() -> None:
    r = RangeSet([(409600, 413696), (5 * MiB + 1, 5 * MiB + 2), (10 * MiB - 1, 10 * MiB + 1)])
    assert r.rounded(MiB) == RangeSet([(0, MiB), (5 * MiB, 6 * MiB), (9 * MiB, 11 * MiB)])
    assert r.rounded(MiB, size=int(10.5 * MiB)).pairs() == [[0, MiB], [5 * MiB, MiB], [9 * MiB, int(1.5 * MiB)]]
    assert r.rounded(0) == r  # exact


def test_what_a_range_list_says_for_a_file() -> None:
    r = RangeSet([(0, 4096), (3 * MiB, 3 * MiB + 4096)])
    assert prefetch_ranges(r, 64 * MiB, MiB) == [[0, MiB], [3 * MiB, MiB]]
    assert prefetch_ranges(r, 64 * MiB, 0) == [[0, 4096], [3 * MiB, 4096]]
    assert prefetch_ranges(r, 2 * MiB, 4 * MiB) is None  # covers the whole file once rounded
    assert prefetch_ranges(None, 64 * MiB, MiB) is None
    assert prefetch_bytes(r, 64 * MiB, MiB) == 2 * MiB and prefetch_bytes(None, 64 * MiB, MiB) == 64 * MiB


def test_a_book_merges_by_union_and_whole_wins() -> None:
    a, b = RangeBook(), RangeBook()
    a.add("/x", 0, 10)
    a.add("/y", 0, 10)
    b.add("/x", 20, 30)
    b.mark_whole("/y")
    b.add("/z", 5, 6)
    a.merge(b)
    assert a.get("/x") == RangeSet([(0, 10), (20, 30)])
    assert "/y" in a and a.get("/y") is None
    assert a.get("/z") == RangeSet([(5, 6)])
    b.add("/z", 7, 8)
    assert a.get("/z") == RangeSet([(5, 6)])  # a copy, not shared
    assert a.read_bytes("/x", 100) == 20 and a.read_bytes("/y", 100) == 100 and a.read_bytes("/n", 5) is None


def _book() -> RangeBook:
    book = RangeBook()
    book.add("/big", 409600, 413696)
    book.add("/big", 40 * MiB, 40 * MiB + 4096)
    book.mark_whole("/lib.so")
    return book


ENTRIES = [ListedFile("/big", 64 * MiB, 10), ListedFile("/lib.so", 1000, 20), ListedFile("/nodata", 5000, 30)]


def test_saved_ranges_sit_beside_a_byte_compatible_pair_and_load_back(tmp_path) -> None:
    path = tmp_path / "library/nginx:latest"
    result = save_list(ENTRIES, path, ranges=_book(), granularity=MiB)
    assert result.paths == (path, tmp_path / "library/nginx:latest.csv", tmp_path / "library/nginx:latest.ranges.json")
    plain, table, _ = render(ENTRIES)
    assert path.read_bytes() == plain and (tmp_path / "library/nginx:latest.csv").read_bytes() == table
    doc = json.loads(ranges_path(path).read_text())
    assert doc == {"version": "v1", "files": [
        {"path": "/big", "ranges": [[0, MiB], [40 * MiB, MiB]]},
        {"path": "/lib.so", "ranges": None},
        {"path": "/nodata", "ranges": None}]}
    for loaded in (load_list(path), load_list(str(path) + ".csv")):
        assert loaded.ranges is not None and loaded.ranges.get("/big") == RangeSet([(0, MiB), (40 * MiB, 41 * MiB)])
        assert "/nodata" in loaded.ranges and loaded.ranges.get("/nodata") is None


def test_exact_granularity_and_a_list_without_ranges(tmp_path) -> None:
    out = tmp_path / "r.json"
    save_range_list(ENTRIES, out, ranges=_book(), granularity=0)
    assert json.loads(out.read_text())["files"][0]["ranges"] == [[409600, 4096], [40 * MiB, 4096]]
    save_list(ENTRIES, tmp_path / "plain")
    assert not ranges_path(tmp_path / "plain").exists() and load_list(tmp_path / "plain").ranges is None


def test_a_bad_ranges_sibling_is_one_warning(tmp_path) -> None:
    save_list(ENTRIES, tmp_path / "l")
    ranges_path(tmp_path / "l").write_text('{"version": "v2", "files": []}')
    loaded = load_list(tmp_path / "l")
    assert loaded.ranges is None and len(loaded.entries) == 3
    assert loaded.warnings == (f"{tmp_path}/l.ranges.json: bad range list: not a v1 range list (ranges left out)",)
    ranges_path(tmp_path / "l").write_text('{"version": "v1", "files": [{"path": "/x", "ranges": [[0, -1]]}]}')
    with pytest.raises(ListFileError, match=r"bad range \[0, -1\]: need offset >= 0, size > 0"):
        load_range_list(ranges_path(tmp_path / "l"))


def test_a_trace_list_keeps_ranges_through_curation_and_merges_by_union_with_undo() -> None:
    from nydus_top.model.tracelist import TraceList

    items = TraceList()
    items.extend(ENTRIES)
    items.set_traced_ranges(_book())
    assert [items.read_bytes(r) for r in range(3)] == [8192, 1000, None]
    items.delete([1])
    assert items.read_bytes(0) == 8192 and items.read_bytes(1) is None
    other = RangeBook()
    other.add("/big", 0, 4096)
    other.add("/nodata", 0, 100)
    items.merge([ListedFile("/new", 10)], other)
    assert items.read_bytes(0) == 12288 and items.read_bytes(1) == 100
    assert items.ranges().get("/big") == RangeSet([(0, 4096), (409600, 413696), (40 * MiB, 40 * MiB + 4096)])
    items.undo()
    assert items.read_bytes(0) == 8192 and items.read_bytes(1) is None and "/nodata" not in items.ranges()
    items.redo()
    assert items.read_bytes(1) == 100


def test_convert_range_list_uses_the_saved_ranges_and_the_granularity(tmp_path, capsys) -> None:
    from nydus_top.cli import main

    save_list(ENTRIES, tmp_path / "l", ranges=_book(), granularity=0)
    config = tmp_path / "c.toml"
    config.write_text("[ranges]\ngranularity = 65536\n")
    out = tmp_path / "out.json"
    assert main(["convert", str(tmp_path / "l"), "--config", str(config), "--range-list", str(out)]) == 0
    assert json.loads(out.read_text())["files"][0] == {"path": "/big", "ranges": [[393216, 65536], [40 * MiB, 65536]]}
    assert main(["convert", str(tmp_path / "l.csv"), "--config", str(config), "--range-list", str(out),
                 "--force", "--granularity", "0"]) == 0
    assert json.loads(out.read_text())["files"][0] == {"path": "/big", "ranges": [[409600, 4096], [40 * MiB, 4096]]}
    assert main(["convert", str(tmp_path / "l"), "--config", str(config), "--range-list", str(out),
                 "--force", "--granularity", "-1"]) == 1
    assert capsys.readouterr().err.endswith("nydus-top convert: --granularity must be >= 0\n")


def test_a_range_list_is_read_up_to_its_size_limit(tmp_path, monkeypatch) -> None:
    import nydus_top.lists.files as listfile

    doc = b'{"version": "v1", "files": [{"path": "/x", "ranges": [[0, 1]]}]}'
    (tmp_path / "r.json").write_bytes(doc)
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", len(doc))
    assert load_range_list(tmp_path / "r.json").get("/x") == RangeSet([(0, 1)])
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", len(doc) - 1)
    with pytest.raises(ListFileError, match=r"r.json: larger than 63 bytes, not read$"):
        load_range_list(tmp_path / "r.json")


def test_a_range_list_is_read_up_to_its_limit_of_items(tmp_path, monkeypatch) -> None:
    # hostile: 256 MiB of "[0,1]," decode to 44M Python lists before they are ranges
    import nydus_top.lists.files as listfile

    doc = b'{"version": "v1", "files": [{"path": "/x[1]", "ranges": [[0, 1], [4, 1]]}]}'
    # the document's {:,:[ 5, the file's {:,: 4, the path's [ 1, the ranges' [ 1 and [,,[, 5: 16
    (tmp_path / "r.json").write_bytes(doc)
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 16)
    assert load_range_list(tmp_path / "r.json").get("/x[1]") == RangeSet([(0, 1), (4, 5)])
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 15)
    with pytest.raises(ListFileError, match=r"r.json: bad range list: more than 15 JSON values and keys, not read$"):
        load_range_list(tmp_path / "r.json")


@pytest.mark.parametrize("doc", [
    b'{"version": "v1", "files": [' + b",".join([b"{}"] * 600) + b"]}",  # 256 MiB of them: 6.4 GB
    b'{"version": "v1", "files": [' + b",".join([b'"ab"'] * 1200) + b"]}",  # 4 GB
    b'{"version": "v1", "files": [' + b",".join([b"1000"] * 1200) + b"]}",  # 2.3 GB
    b'{"version": "v1", "files": [], "x": {' + b",".join(b'"%d": 0' % i for i in range(600)) + b"}}",  # 4 GB
    b'{"version": "v1", "files": [' + b",".join(b'{"path": "/%d", "ranges": null}' % i for i in range(300))
    + b"]}",  # 2.7 GB
])
def test_a_range_list_of_any_shape_past_the_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch,
                                                                                   doc: bytes) -> None:
    # counting only the '[' let 256 MiB of these through, each taking GBs as it was decoded
    import nydus_top.lists.files as listfile

    (tmp_path / "r.json").write_bytes(doc)
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 1199)
    with pytest.raises(ListFileError, match=r"r.json: bad range list: more than 1199 JSON values and keys, not read$"):
        load_range_list(tmp_path / "r.json")


def test_a_range_list_saved_past_the_limit_lists_the_files_with_most_ranges_whole(tmp_path, monkeypatch) -> None:
    import nydus_top.lists.files as listfile

    book = RangeBook()
    book.set("/a", RangeSet([(0, 1), (4, 5), (8, 9)]))
    book.set("/b[", RangeSet([(0, 1)]))
    book.set("/c", RangeSet([(0, 1), (4, 5)]))
    entries = [ListedFile(p, 100, i) for i, p in enumerate(("/a", "/b[", "/c"))]
    # the document 5, each file 4 and a ',' but the last (14), the path's '[' 1, /a 9, /b[ 3, /c 6: 38
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 38)
    assert save_range_list(entries, tmp_path / "all.json", ranges=book, granularity=0).warnings == ()
    assert load_range_list(tmp_path / "all.json").get("/a") == book.get("/a")
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 37)
    saved = save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0)
    assert saved.warnings == ("listed 1 file with the most ranges whole: a range list read back holds at most 37 "
                              "JSON values and keys and 268435456 bytes",)
    back = load_range_list(tmp_path / "r.json")  # within the limit it is read by
    assert back.get("/a") is None and "/a" in back and back.get("/c") == book.get("/c")
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 28)  # /a and /c whole: 20 + 1 + 3
    assert save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0, overwrite=True).warnings[0] \
        .startswith("listed 2 files with the most ranges whole")
    assert load_range_list(tmp_path / "r.json").get("/b[") == book.get("/b[")


SAVED_FILES = st.lists(st.tuples(st.text("/ab[{,:\"\\\x1bü", max_size=6).map("/".__add__),
                                 st.none() | st.lists(st.tuples(st.integers(0, 10**12), st.integers(1, 10**6)),
                                                      max_size=4)),
                       unique_by=lambda file: file[0], max_size=5)


def _book_of(files) -> tuple[RangeBook, list[ListedFile]]:
    book = RangeBook()
    for path, pairs in files:
        book.set(path, None if pairs is None else RangeSet((offset, offset + size) for offset, size in pairs))
    return book, [ListedFile(path, 10**13, i) for i, (path, _) in enumerate(files)]


@settings(max_examples=300, deadline=None)
@given(SAVED_FILES, st.data())
def test_a_saved_range_list_is_within_the_limits_its_reader_counts(files, data: st.DataObject) -> None:
    import nydus_top.lists.files as listfile

    book, entries = _book_of(files)
    saved, warnings = listfile.range_list(entries, book, 0)
    items, size = listfile._items(saved.decode()), len(saved)
    limits = listfile.RANGE_LIST_MAX_ITEMS, listfile.RANGE_LIST_MAX_BYTES
    try:
        # at the limits, as the reader counts the document: as it is
        listfile.RANGE_LIST_MAX_ITEMS, listfile.RANGE_LIST_MAX_BYTES = items, size
        assert listfile.range_list(entries, book, 0) == (saved, warnings)
        # below them: files whole or left out, and what is saved reads back
        listfile.RANGE_LIST_MAX_ITEMS = data.draw(st.integers(5, items), label="items")
        listfile.RANGE_LIST_MAX_BYTES = data.draw(st.integers(len(listfile.range_list([])[0]), size), label="bytes")
        fewer, warned = listfile.range_list(entries, book, 0)
        assert listfile._items(fewer.decode()) <= listfile.RANGE_LIST_MAX_ITEMS
        assert len(fewer) <= listfile.RANGE_LIST_MAX_BYTES
        assert bool(warned) == (fewer != saved)
        back = listfile._range_book_of(fewer, "r.json")
        assert all(path not in back or back.get(path) in (None, book.get(path)) for path, _ in files)
    finally:
        listfile.RANGE_LIST_MAX_ITEMS, listfile.RANGE_LIST_MAX_BYTES = limits


def test_a_range_list_whose_paths_alone_are_past_the_limits_leaves_the_files_out_that_take_most(
        tmp_path, monkeypatch) -> None:
    # a container names its files: '[' or ',' (an item each) or length (bytes) it picks; the
    # list saved with every file whole was still refused by its own reader
    import nydus_top.lists.files as listfile

    book, entries = _book_of([("/a", [(0, 1)]), ("/" + "[" * 40, None), ("/b", None), ("/" + "x" * 80, [(0, 1)])])
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 30)  # the document 5, each file 5 (less 1) or more
    saved = save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0)
    assert saved.warnings == (
        "listed 2 files with the most ranges whole: a range list read back holds at most 30 JSON values and keys "
        "and 268435456 bytes",
        "left out 1 file of the range list, their paths alone past its 30 JSON values and keys or 268435456 bytes, "
        "e.g. '/[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['")
    back = load_range_list(tmp_path / "r.json")
    assert sorted(back._by_path) == ["/a", "/b", "/" + "x" * 80]
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 1 << 20)
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", 200)
    saved = save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0, overwrite=True)
    assert saved.warnings[-1].startswith("left out 2 files of the range list") and saved.warnings[-1].endswith(
        "e.g. '/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'...")
    assert len((tmp_path / "r.json").read_bytes()) <= 200 and sorted(load_range_list(tmp_path / "r.json")._by_path) \
        == ["/a", "/b"]
    book.set("/a", RangeSet())  # "ranges": [], 2 bytes shorter than null: kept when past the bytes
    saved = save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0, overwrite=True)
    assert len(saved.warnings) == 2 and load_range_list(tmp_path / "r.json").get("/a") == RangeSet()


@pytest.mark.parametrize("files", [
    [("/" + "\x1b" * 50, None)],  # 6 bytes a character, as JSON escapes it
    [("/" + "\U0001f600" * 50, None)],  # 4 bytes a character
    [("/a", [(10**19 + k * 2 * 10**18, 10**18) for k in range(4)])],  # 20 and 19 digits: the most a pair has
    [("/a", [(k * 10**9, 10**6) for k in range(1, 100)])],
])
def test_a_range_list_a_byte_or_an_item_past_its_limits_changes(files, monkeypatch) -> None:
    # before the exact count, the writer rules out at a glance lists far within the limits: that
    # glance must never take one past a limit for one within
    import nydus_top.lists.files as listfile

    book, _ = _book_of(files)
    entries = [ListedFile(path, None, 0) for path, _ in files]
    saved, warnings = listfile.range_list(entries, book, 0)
    items = listfile._items(saved.decode())
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", len(saved))
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", items)
    assert listfile.range_list(entries, book, 0) == (saved, warnings) and warnings == ()
    for limit, at in (("RANGE_LIST_MAX_BYTES", len(saved) - 1), ("RANGE_LIST_MAX_ITEMS", items - 1)):
        monkeypatch.setattr(listfile, limit, at)
        fewer, warned = listfile.range_list(entries, book, 0)
        assert warned and len(fewer) < len(saved) and listfile._items(fewer.decode()) < items
        monkeypatch.undo()
        monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", len(saved))
        monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", items)


def test_a_range_list_past_its_size_lists_the_files_with_most_ranges_whole(tmp_path, monkeypatch) -> None:
    # 6.7M ranges of 7-digit offsets, indented, are 256 MiB: a list within the items was refused
    import nydus_top.lists.files as listfile

    book, entries = _book_of([("/a", [(i * 8192, 4096) for i in range(100)]), ("/b", [(0, 4096)])])
    whole = save_range_list(entries, tmp_path / "all.json", ranges=book, granularity=0)
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_BYTES", len((tmp_path / "all.json").read_bytes()) - 1)
    saved = save_range_list(entries, tmp_path / "r.json", ranges=book, granularity=0)
    assert whole.warnings == () and saved.warnings == (
        "listed 1 file with the most ranges whole: a range list read back holds at most 25165824 JSON values and "
        f"keys and {listfile.RANGE_LIST_MAX_BYTES} bytes",)
    back = load_range_list(tmp_path / "r.json")
    assert back.get("/a") is None and "/a" in back and back.get("/b") == book.get("/b")


def test_a_list_saved_with_its_ranges_past_the_limit_says_which_it_listed_whole(tmp_path, monkeypatch) -> None:
    import nydus_top.lists.files as listfile

    book = RangeBook()
    book.set("/a", RangeSet([(0, 1), (4, 5), (8, 9)]))
    # the document 5, /b\n 4 and a ',', /a 4 and its ranges 9: 23, 14 with /a whole
    monkeypatch.setattr(listfile, "RANGE_LIST_MAX_ITEMS", 22)
    saved = save_list([ListedFile("/a", 100, 0), ListedFile("/b\n", 1, 1)], tmp_path / "l", ranges=book,
                      granularity=0)
    assert saved.warnings == ("left out '/b\\n': contains a newline",
                              "listed 1 file with the most ranges whole: a range list read back holds at most 22 "
                              "JSON values and keys and 268435456 bytes")
    assert load_range_list(tmp_path / "l.ranges.json").get("/a") is None


def test_the_collector_folds_lines_into_a_book() -> None:
    from nydus_top.tracing.range_tracer import RangeCollector, parse_range_line

    lines = [b'{"file":0,"path":"/a","size":100000}', b'{"file":0,"off":4096,"len":4096}',
             b'{"file":1,"path":"","size":5}', b'{"file":1,"off":0,"len":5}',
             b'{"file":2,"path":"/lib.so","size":9}', b'{"file":2,"whole":"mapped"}',
             b'{"file":0,"off":0,"len":4096}', b'{"notice":"limit"}',
             b'{"marks_left":0,"events":7,"foreign":1}']
    seen = []
    c = RangeCollector()
    c.follow(seen.append)
    c.add([parse_range_line(line) for line in lines])
    assert c.book.get("/a") == RangeSet([(0, 8192)]) and "" not in c.book
    assert c.book.get("/lib.so") is None and c.whole_why == {"/lib.so": "mapped"}
    assert c.notices == ["limit"] and c.end.events == 7 and c.end.foreign == 1
    assert len(seen) == 2 and len(seen[0]) == 0 and seen[1].get("/a") == c.book.get("/a")
    with pytest.raises(ValueError):
        parse_range_line(b'{"file":0,"off":1}')


def test_kernel_release_check_for_pre_access_events() -> None:
    from nydus_top.tracing.range_session import kernel_has_pre_access

    assert kernel_has_pre_access("6.14.0") and kernel_has_pre_access("6.18.44-fc-v1045")
    assert kernel_has_pre_access("7.0.1") and not kernel_has_pre_access("6.13.9")
    assert not kernel_has_pre_access("5.15.0-91-generic") and kernel_has_pre_access("odd")


def test_a_run_copies_a_live_collector_only_after_it_changed() -> None:
    from nydus_top.model.trace import Target, TraceRun
    from nydus_top.tracing.range_tracer import FileSeen, RangeCollector, RangeRead

    run = TraceRun(Target("t", "img"))
    run.items.extend(ENTRIES)
    collector = RangeCollector()
    copies = []
    snapshot = collector.snapshot
    collector.snapshot = lambda: copies.append(1) or snapshot()
    run.ranges_from(collector)
    assert run.drain() == 1 and run.items.read_bytes(0) is None  # the empty book, once
    assert run.drain() == 0 and len(copies) == 1
    collector.add([FileSeen(0, "/big", 64 * MiB), RangeRead(0, 0, 4096)])
    collector.add([RangeRead(0, 8192, 4096)])
    assert run.drain() == 1 and run.items.read_bytes(0) == 8192 and len(copies) == 2
    assert run.drain() == 0 and len(copies) == 2


def test_the_collector_keeps_its_ranges_within_a_budget_and_gives_it_back() -> None:
    from nydus_top.lists.compact import Budget
    from nydus_top.tracing.range_tracer import FILE_BYTES, RANGE_BYTES, FileSeen, RangeCollector, RangeRead, WholeFile

    file_a = FILE_BYTES + len("/a")
    budget = Budget(file_a + 3 * RANGE_BYTES)  # /a and three of its ranges, exactly
    c = RangeCollector(budget)
    c.add([FileSeen(0, "/a", MiB), *(RangeRead(0, k * 8192, 4096) for k in range(3))])
    assert len(c.book.get("/a")) == 3 and budget.used == budget.max_bytes and c.notices == []  # at the limit
    c.add([RangeRead(0, 4096, 4096)])  # joins two ranges into one: gives one back
    assert len(c.book.get("/a")) == 2 and budget.used == file_a + 2 * RANGE_BYTES
    c.add([RangeRead(0, 65536, 4096), RangeRead(0, 131072, 4096)])  # the second passes the limit
    assert c.book.get("/a") is None and c.whole_why == {"/a": "memory"} and c.notices == ["memory"]
    assert budget.used == file_a  # whole: its ranges gave their bytes back
    c.add([FileSeen(1, "/b" * 200, MiB), RangeRead(1, 0, 4096)])  # past the limit: not kept, no data
    assert "/b" * 200 not in c.book and c.notices == ["memory"]  # said once
    c.release()
    assert budget.used == 0 and c.book.get("/a") is None  # the book stays readable
    c.release()
    assert budget.used == 0
    other = RangeCollector(budget)
    other.add([FileSeen(0, "/a", MiB), RangeRead(0, 0, 4096), RangeRead(0, 8192, 4096)])
    assert budget.used == file_a + 2 * RANGE_BYTES
    other.add([WholeFile(0, "read")])  # read whole: its ranges give their bytes back
    assert other.book.get("/a") is None and budget.used == file_a


def _naive(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of *intervals* by brute force: merged, touching ones joined."""
    out: list[list[int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


@pytest.mark.parametrize("seed", range(40))
def test_from_pairs_and_update_in_any_order_are_the_union(seed: int) -> None:
    import random

    rng = random.Random(seed)
    spans = [(o, rng.randrange(1, 40)) for o in (rng.randrange(0, 600) for _ in range(rng.randrange(0, 60)))]
    pairs = [[o, z] for o, z in spans]
    rng.shuffle(pairs)
    got = RangeSet.from_pairs(pairs)
    assert list(got) == _naive([(o, o + z) for o, z in spans])
    a, b = RangeSet.from_pairs(pairs[: len(pairs) // 2]), RangeSet.from_pairs(pairs[len(pairs) // 2:])
    a.update(b)
    assert a == got
    half = RangeSet.from_pairs(pairs[: len(pairs) // 2])
    assert half.union(RangeSet()) == half and RangeSet().union(half) == half


def test_ranges_in_a_hostile_order_are_added_in_offset_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A range list in reverse order (or two books interleaved) made each add shift every interval
    already held: 1M reversed ranges took 162 s. They are added in order of offset, so each add
    appends or joins the last (linear)."""
    seen: list[int] = []
    add = RangeSet.add

    def watched(self: RangeSet, start: int, end: int) -> int:
        assert not self or start >= list(self)[-1][0], "an add before the last interval"
        seen.append(start)
        return add(self, start, end)

    monkeypatch.setattr(RangeSet, "add", watched)
    reversed_pairs = [[2 * i, 1] for i in range(300, -1, -1)]
    assert list(RangeSet.from_pairs(reversed_pairs)) == [(2 * i, 2 * i + 1) for i in range(301)]
    evens = RangeSet.from_pairs([[4 * i, 1] for i in range(100)])
    odds = RangeSet.from_pairs([[4 * i + 2, 1] for i in range(100)])
    evens.update(odds)  # interleaved: every one of odds' goes between two of evens'
    assert list(evens) == [(2 * i, 2 * i + 1) for i in range(200)]
    assert seen
