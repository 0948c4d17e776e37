"""Huge lists held compactly (issue 18 item 7): the PathTable; load_columns reading a csv a chunk
at a time into the same entries, warnings, ranges and metadata as load_list; a distinct save
writing the same bytes a piece at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nydus_top.fs.reading import regular_chunks
from nydus_top.lists import files
from nydus_top.lists import paths as paths_module
from nydus_top.lists.files import ListFileError, load_columns, load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.paths import LARGEST, NONE, PathTable, columns_of
from nydus_top.lists.ranges import RangeSet
from nydus_top.model.records import ListedFile


def test_each_path_gets_one_id_in_order_and_comes_back_exactly() -> None:
    odd = ["/a", "/b/ü", "/c/\udcff\udc80", "/d/\ud800", "/e/\n", "/", "/a"]
    table = PathTable()
    assert [table.id_of(p) for p in odd] == [0, 1, 2, 3, 4, 5, 0]
    assert list(table) == odd[:-1] and len(table) == 6 and table[-1] == "/"
    assert table.find("/c/\udcff\udc80") == 2 and table.find("/nope") == -1 and "/e/\n" in table
    with pytest.raises(IndexError):
        table[6]


@pytest.mark.parametrize("dict_paths", [0, 100, 1 << 20])  # compact from the start, past the dict, a dict only
def test_many_paths_survive_the_table_growing_and_a_truncate(dict_paths: int) -> None:
    table = PathTable((f"/p/{i}" for i in range(20_000)), dict_paths=dict_paths)
    assert all(table.find(f"/p/{i}") == i for i in range(0, 20_000, 7))
    assert all(table.id_of(f"/p/{i}") == i for i in range(0, 20_000, 7)) and len(table) == 20_000
    table.truncate(5)
    assert list(table) == [f"/p/{i}" for i in range(5)] and table.find("/p/5") == -1
    assert table.id_of("/p/9") == 5 and table.id_of("/p/0") == 0 and "/p/9" in table
    small = PathTable(["/a", "/b", "/c"], dict_paths=1)
    small.truncate(1)
    assert list(small) == ["/a"] and small.find("/b") == -1 and small.id_of("/c") == 1


def test_columns_keep_each_path_once_and_mark_unknowns() -> None:
    table = PathTable(["/x"])
    cols = columns_of([ListedFile("/a", 1, None), ListedFile("/x"), ListedFile("/a", 9, 9)], table)
    assert list(cols.ids) == [1, 0] and list(cols.sizes) == [1, NONE] and list(cols.times) == [NONE, NONE]


def one_by_one(entries: list[ListedFile], table: PathTable) -> tuple[list[int], list[int], list[int]]:
    """What columns_of gives, an entry at a time: each path's id (added in order), its first time only."""
    ids: list[int] = []
    sizes: list[int] = []
    times: list[int] = []
    for entry in entries:
        fid = table.id_of(entry.path)
        if fid not in ids:
            ids.append(fid)
            sizes.append(NONE if entry.size is None else min(entry.size, LARGEST))
            times.append(NONE if entry.elapsed_us is None else min(entry.elapsed_us, LARGEST))
    return ids, sizes, times


@pytest.mark.parametrize("chunk", [1, 3, 4, 1000])  # a chunk with a repeat, a chunk repeating an earlier one, one chunk
@pytest.mark.parametrize("dict_paths", [0, 5, 1 << 20])  # compact, the dict dropped within a chunk, a dict only
@pytest.mark.parametrize("repeats", [False, True])
def test_columns_taken_a_chunk_at_a_time_are_those_taken_one_by_one(monkeypatch: pytest.MonkeyPatch, chunk: int,
                                                                    dict_paths: int, repeats: bool) -> None:
    monkeypatch.setattr(paths_module, "COLUMN_CHUNK", chunk)
    known = ["/k0", "/k1", "/k2"]
    run = [ListedFile("/k1", 7, 8), ListedFile("/n0", None, 3), ListedFile("/n1", 10**30, None),
           ListedFile("/k0", 1, 2), ListedFile("/n2", 5, LARGEST + 1), ListedFile("/n3", 0, 0),
           ListedFile("/n4", 4, 4), ListedFile("/k2", 2, 2)]
    if repeats:  # a path again within its chunk, and in a later chunk
        run[4:4] = [ListedFile("/n0", 99, 99)]
        run += [ListedFile("/n3", 1, 1), ListedFile("/k1", 1, 1), ListedFile("/n5", 6, 6)]
    table, reference = PathTable(known, dict_paths=dict_paths), PathTable(known, dict_paths=dict_paths)
    cols = columns_of(iter(run), table)
    assert (list(cols.ids), list(cols.sizes), list(cols.times)) == one_by_one(run, reference)
    assert list(table) == list(reference) and all(table.find(p) == i for i, p in enumerate(reference))
    again = columns_of(run[::-1], table)  # every path known now, in another order
    assert (list(again.ids), list(again.sizes), list(again.times)) == one_by_one(run[::-1], reference)


CSVS = {
    "plain": "path,size,elapsed\n/a,1,2\n/b,3,4\n/a,5,6\n",
    "blank lines": "path,size,elapsed\n\n/a,1,2\n\n",
    "header only": "path,size,elapsed\n",
    "header without line end": "path,size,elapsed",
    "one row without line end": "path,size,elapsed\n/a,1,2",
    "rows without line end": "path,size,elapsed\n/a,1,2\n/b,3,4",
    "quoted": 'path,size,elapsed\n"/a,b",1,2\n/c,3,4\n',
    "crlf": "path,size,elapsed\r\n/a,1,2\r\n",
    "readable": "path,size,elapsed\n/a,1.5 KiB,3 us\n",
    "relative": "path,size,elapsed\nrel,1,2\n/b,3,4\n",
    "unknowns": "path,size,elapsed\n/a,,\n/b,3,\n",
    "beyond 64 bits": f"path,size,elapsed\n/a,{10**30},2\n",
    "undecodable": "path,size,elapsed\n/a\udcff\udcfe,1,2\n",
    "bad header": "path,elapsed,size\n/a,1,2\n",
    "wrong columns": "path,size,elapsed\n/a,1\n",
    "empty": "",
    "fields off by one each way": "path,size,elapsed\n/a,1\n/b,2,3,4\n",
    "many rows, repeats late": "path,size,elapsed\n" + "".join(f"/r{i % 30},{i},{i * 2}\n" for i in range(40)),
}


# "beyond 64 bits" streams too, until the number: then load_list, for its exact value.
STREAMED = {"plain", "blank lines", "header only", "header without line end", "one row without line end",
            "undecodable", "many rows, repeats late"}


def entries_of(loaded: files.LoadedColumns, table: PathTable) -> list[ListedFile]:
    cols = loaded.columns
    return [ListedFile(table[f], None if z == NONE else z, None if t == NONE else t)
            for f, z, t in zip(cols.ids, cols.sizes, cols.times, strict=True)]


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("name", sorted(CSVS))
def test_load_columns_gives_what_load_list_gives(tmp_path: Path, name: str, chunk: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.csv"
    path.write_bytes(CSVS[name].encode("utf-8", "surrogateescape"))
    monkeypatch.setattr(files, "regular_chunks", lambda p, **kw: regular_chunks(p, **{**kw, "chunk": chunk}))
    table = PathTable(["/b"])  # a path another run already named
    try:
        expected = load_list(path)
    except ListFileError as err:
        with pytest.raises(ListFileError, match="^" + str(err).replace("\\", "\\\\").replace("(", r"\(")
                           .replace(")", r"\)").replace("[", r"\[") + "$"):
            load_columns(path, table)
        assert list(table) == ["/b"]  # nothing of the bad file stays
        return
    if name in STREAMED:  # read a chunk at a time, never whole
        monkeypatch.setattr(files, "load_list", lambda _: pytest.fail("read whole"))
    loaded = load_columns(path, table)
    got = entries_of(loaded, table)
    big = (1 << 63) - 1
    assert got == [ListedFile(e.path, None if e.size is None else min(e.size, big), e.elapsed_us)
                   for e in expected.entries]
    assert loaded.warnings == expected.warnings and loaded.meta == expected.meta


PLAIN = {
    "plain": "/a\n/b\n/a\n",
    "blank lines and no line end": "\n/a\n\n/b",
    "relative lines": "x\n" * 8 + "/a\n" + "y" * 100 + "\n",
    "a csv": "path,size,elapsed\n/a,1,2\n",
    "a header without line end": "path,size,elapsed",
    "a header cut short": "path,si\n/a\n",
    "undecodable": "/a\udcff\n",
    "empty": "",
}


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_load_columns_of_a_plain_list_gives_what_load_list_gives(tmp_path: Path, name: str, chunk: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run"
    path.write_bytes(PLAIN[name].encode("utf-8", "surrogateescape"))
    monkeypatch.setattr(files, "regular_chunks", lambda p, **kw: regular_chunks(p, **{**kw, "chunk": chunk}))
    expected = load_list(path)
    if name != "a csv":  # read a chunk at a time, never whole
        monkeypatch.setattr(files, "load_list", lambda _: pytest.fail("read whole"))
    table = PathTable(["/b"])
    loaded = load_columns(path, table)
    assert entries_of(loaded, table) == list(expected.entries)
    assert loaded.warnings == expected.warnings and loaded.meta == expected.meta


def test_load_columns_takes_the_ranges_and_checks_them_against_sizes(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    path.write_text("path,size,elapsed\n/a,100,1\n/b,10,2\n")
    doc: dict[str, Any] = {"version": "v1", "files": [{"path": "/a", "ranges": [[0, 50]]}]}
    (tmp_path / "run.ranges.json").write_text(json.dumps(doc))
    book = load_columns(path, PathTable()).ranges
    assert book is not None and list(book.items()) == list(load_list(path).ranges.items())  # type: ignore[union-attr]
    doc["files"].append({"path": "/b", "ranges": [[0, 50]]})
    (tmp_path / "run.ranges.json").write_text(json.dumps(doc))
    loaded = load_columns(path, PathTable())
    assert loaded.ranges is None and loaded.warnings == load_list(path).warnings
    assert "beyond its size 10" in loaded.warnings[0]


ODD = [ListedFile("/a", 1, 2), ListedFile("rel", 3, 4), ListedFile("/b\n", 5, 6), ListedFile("/c\x1b[31m", None, 7),
       ListedFile("/d\udcff", 8, None), ListedFile("/e ", 9, 9), ListedFile("/f,\"g\"", 1536, 1500),
       ListedFile("/h\u202e", 10, 11)]


@pytest.mark.parametrize("readable", [False, True])
@pytest.mark.parametrize("count", [0, 1, 10_000])  # 10k: several pieces
def test_a_distinct_save_writes_the_same_bytes_a_piece_at_a_time(tmp_path: Path, readable: bool, count: int) -> None:
    entries = [*ODD, *(ListedFile(f"/many/{i}", i, i) for i in range(count))] if count else []
    meta = ListMeta(image="example.com/app:1", runs=("r1",))
    whole = files.save_list(entries, tmp_path / "whole", readable=readable, meta=meta)
    pieces = files.save_list(tuple(entries), tmp_path / "pieces", readable=readable, meta=meta, distinct=True)
    assert pieces.written == whole.written and pieces.warnings == whole.warnings
    for suffix in ("", ".csv", ".nydus-top.json"):
        assert (tmp_path / f"pieces{suffix}").read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()


def test_a_piece_that_fails_leaves_the_old_files_intact(tmp_path: Path) -> None:
    target = tmp_path / "out"
    files.save_list([ListedFile("/old")], target)

    class Broken:
        def __len__(self) -> int:
            return 2

        def __contains__(self, item: object) -> bool:
            return False

        def __iter__(self) -> Iterator[ListedFile]:
            yield ListedFile("/new")
            raise RuntimeError("made badly")

    with pytest.raises(RuntimeError):
        files.save_list(Broken(), target, overwrite=True, distinct=True)
    assert target.read_text() == "/old\n" and Path(f"{target}.csv").read_text() == "path,size,elapsed\n/old,,\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.csv"]  # no temporary file left


@pytest.mark.parametrize("doc, why", [
    ({"version": "v2", "files": [{"path": "/a", "ranges": [[-1, 1]]}]}, "not a v1 range list"),
    ({"version": "v1", "files": [{"path": 1, "ranges": None}, {"path": "/b", "ranges": [[-1, 1]]}]},
     "each file must be"),
    ({"version": "v1", "files": [{"path": "/a", "ranges": [[0, 0]]}, {"path": 1}]}, r"bad range \[0, 0\]"),
    ({"version": "v1", "files": {"path": "/a", "ranges": [[0, 1]]}}, "'files' must be a list"),
])
def test_ranges_made_compact_while_parsing_still_fail_in_document_order(tmp_path: Path, doc: object,
                                                                        why: str) -> None:
    path = tmp_path / "x.ranges.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ListFileError, match=f"^{path}: bad range list: {why}"):
        files.load_range_list(path)


def test_a_range_list_is_read_into_arrays_in_any_key_order(tmp_path: Path) -> None:
    path = tmp_path / "x.ranges.json"
    path.write_text('{"files": [{"ranges": [[8192, 4096], [0, 4096], [4096, 10]], "path": "/a", "x": {"path": "/n", '
                    '"ranges": [[1, 1]]}}, {"path": "/b", "ranges": null}], "version": "v1"}')
    book = files.load_range_list(path)
    assert dict(book.items()) == {"/a": RangeSet([(0, 4106), (8192, 12288)]), "/b": None}
