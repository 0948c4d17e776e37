"""The streamed readers of a plain list and of a csv (load_columns's, a chunk at a time) read
whatever bytes come, cut anywhere (a byte a chunk, a header or a line split across chunks, empty
chunks), as the whole-file readers read the same bytes: the same paths, sizes, times and skipped
line warnings, or both decline (then load_list reads the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nydus_top.lists import files
from nydus_top.lists.files import CSV_HEADER, MAX_BAD_LINES, _BadLines, _plain_csv_columns, _plain_list_columns
from nydus_top.lists.paths import NONE, PathTable

HEADER = ",".join(CSV_HEADER).encode()
ODD = [b"\r", b"\r\n", b"\0", b'"', b",", b"\xff", b"\xed\xa0\x80", b"\xc3", "ü\u202e".encode(), b" ", b"\t",
       b"rel", b"\xef\xbb\xbf", HEADER[:7], HEADER[7:], b"x" * (files.BAD_LINE_SHOWN + 1), HEADER, b'/q"x', b"/r\rx"]
PATHS = [b"/a", b"/b", b"/c/d", b"/", b"/e f", *ODD]
NUMBERS = [b"0", b"7", b"123", str(2 ** 63 - 1).encode(), b"", b"-1", b"1.5", b"1 KiB", str(2 ** 63).encode(),
           b"9" * 4301]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def plain_lists(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from([b"", b"", HEADER + b"\n", HEADER, HEADER[:9], b"path,si\n", HEADER + b"\r\n"]))
    clean = draw(st.booleans())  # absolute paths only, or anything
    line = st.sampled_from(PATHS[:5]) if clean else st.sampled_from(PATHS) | st.binary(max_size=12)
    lines = draw(st.lists(line, max_size=MAX_BAD_LINES + 6))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\n\n", b""]), min_size=len(lines),
                         max_size=len(lines)))
    return head + b"".join(line + end for line, end in zip(lines, ends, strict=True))


@st.composite
def csvs(draw: st.DrawFn) -> bytes:
    clean = draw(st.sampled_from([True, True, False]))  # rows the fast way takes, or anything
    number = st.sampled_from(NUMBERS[:4] if clean else NUMBERS)
    path = st.sampled_from(PATHS[:5] if clean else PATHS)
    rows = draw(st.lists(st.tuples(path, number, number).map(b",".join), max_size=8))
    ends = st.sampled_from([b"\n"] if clean else [b"\n", b"\n", b"\r\n", b"\n\n", b""])
    body = b"".join(row + draw(ends) for row in rows)
    if draw(st.sampled_from([False, False, True])):  # the last row without a line break
        body += draw(st.tuples(path, number, number).map(b",".join))
    return draw(st.sampled_from([HEADER + b"\n"] * 6 + [HEADER, HEADER + b"\r\n", HEADER[:9], b""])) + body


def cut(draw: st.DrawFn, blob: bytes) -> list[bytes]:
    """*blob* in chunks: a byte each, a size each, or cut at random places (empty chunks too)."""
    size = draw(st.sampled_from([None, None, 1, 2, 17, 18, 1 << 20]))
    if size is not None:
        return [blob[at:at + size] for at in range(0, len(blob), size)]
    cuts = sorted(draw(st.lists(st.integers(0, len(blob)), max_size=12)))
    return [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streamed") / "run"


@SETTINGS
@given(st.data(), plain_lists() | csvs())
def test_a_plain_list_in_any_chunks_reads_as_load_list_reads_it(listed: Path, data: st.DataObject,
                                                                  blob: bytes) -> None:
    listed.write_bytes(blob)
    chunks = cut(data.draw, blob)
    table = PathTable(["/b"])
    bad = _BadLines(listed)
    columns = _plain_list_columns(iter(chunks), table, bad)
    if blob.startswith(HEADER + b"\n"):  # a csv: load_list reads it as one
        assert columns is None
        return
    expected = files.load_list(listed)
    assert columns is not None
    assert [table[f] for f in columns.ids] == [e.path for e in expected.entries]
    assert set(columns.sizes) <= {NONE} and set(columns.times) <= {NONE}
    assert bad.lines() == expected.warnings


@SETTINGS
@given(st.data(), csvs() | plain_lists())
def test_a_csv_in_any_chunks_reads_as_the_whole_text_reads_it(data: st.DataObject, blob: bytes) -> None:
    chunks = cut(data.draw, blob)
    table = PathTable(["/b"])
    try:
        columns = _plain_csv_columns(iter(chunks), table)
    except (OverflowError, ValueError):  # beyond 64 bits, or more digits than int() reads: load_list then
        columns = None
    rows = files._load_plain_csv(blob.decode("utf-8", "surrogateescape"))
    if rows is None or any(n is not None and n >= 1 << 63 for e in rows for n in (e.size, e.elapsed_us)):
        assert columns is None
        return
    assert columns is not None
    expected = files._dedup(rows)
    assert ([(table[f], z, t) for f, z, t in zip(columns.ids, columns.sizes, columns.times, strict=True)]
            == [(e.path, e.size, e.elapsed_us) for e in expected])


@pytest.mark.parametrize("blob", [HEADER + b'\n/q"x,1,2\n', HEADER + b"\n/r\rx,1,2\n",
                                  HEADER + b"\n/a,1,2\r\n/b,1,2\n"])
def test_a_csv_with_a_quote_or_a_cr_is_left_to_the_csv_module(blob: bytes) -> None:
    # the fast reader takes neither (the csv module reads a quote or a CR its own way): in any chunks
    assert files._load_plain_csv(blob.decode()) is None
    for size in (1, 5, len(blob)):
        assert _plain_csv_columns(iter([blob[at:at + size] for at in range(0, len(blob), size)]), PathTable()) is None
