"""Byte ranges at their edges: what a range list read back may hold and the one-line refusals,
coverage of tiny files, empty intervals, equality, clipping to the file size, whole files in a
book, and the header totals. Written to kill the mutants scripts/mutation found surviving
(issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import re

import pytest

from nydus_top.lists.ranges import MAX_RANGE_END, RangeBook, RangeSet, prefetch_bytes, prefetch_ranges, totals

MIB = 1 << 20


def test_ranges_that_are_not_a_list_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^ranges must be a list of \[offset, size\] pairs or null$"):
        RangeSet.from_pairs({"0": 1})


@pytest.mark.parametrize("pair", [[0, 1, 2], (0, 1), [True, 1], [0, False], [0], "01", [0.0, 1]])
def test_a_pair_that_is_not_two_integers_is_refused_naming_it(pair: object) -> None:
    shown = re.escape(repr(pair))
    with pytest.raises(ValueError, match=rf"^a range must be \[offset, size\], two integers, got {shown}$"):
        RangeSet.from_pairs([[0, 1], pair])


def test_a_long_pair_is_shown_shortened() -> None:
    pair = list(range(100))
    with pytest.raises(ValueError, match=rf"got {re.escape(repr(pair)[:37])}\.\.\.$"):
        RangeSet.from_pairs([pair])


@pytest.mark.parametrize("pair", [[-1, 1], [0, 0], [5, -1], [MAX_RANGE_END, 1], [MAX_RANGE_END - 1, 2]])
def test_a_range_out_of_bounds_is_refused(pair: list[int]) -> None:
    with pytest.raises(ValueError, match=rf"^bad range \[{pair[0]}, {pair[1]}\]: need offset >= 0, size > 0, "
                                         rf"end <= {MAX_RANGE_END}$"):
        RangeSet.from_pairs([pair])


def test_a_range_ending_exactly_at_the_limit_is_read() -> None:
    assert RangeSet.from_pairs([[MAX_RANGE_END - 1, 1]]).pairs() == [[MAX_RANGE_END - 1, 1]]


def test_coverage_of_empty_and_tiny_files() -> None:
    assert RangeSet().covers(0) and not RangeSet().covers(1)
    assert RangeSet([(0, 1)]).covers(1) and not RangeSet([(1, 10)]).covers(10)


def test_an_empty_interval_adds_nothing() -> None:
    ranges = RangeSet()
    assert ranges.add(5, 5) == 0 and ranges.add(7, 3) == 0
    assert not ranges and len(ranges) == 0 and ranges.pairs() == []
    assert ranges.add(0, 4) == 4 and ranges


def test_equality_is_the_same_intervals() -> None:
    assert RangeSet([(0, 10)]) == RangeSet([(0, 5), (5, 10)])
    assert RangeSet([(0, 10)]) != RangeSet([(0, 20)])
    assert RangeSet([(0, 10)]) != RangeSet([(5, 10)])
    assert RangeSet() != [] and RangeSet([(0, 1)]) != [(0, 1)]
    assert repr(RangeSet([(0, 10), (20, 30)])) == "RangeSet([(0, 10), (20, 30)])"


def test_rounding_is_clipped_to_the_file_size() -> None:
    ranges = RangeSet([(2 * MIB + 100, 2 * MIB + 200)])
    size = 2 * MIB + MIB // 2
    assert prefetch_ranges(ranges, size, MIB) == [[2 * MIB, MIB // 2]]
    assert prefetch_bytes(ranges, size, MIB) == MIB // 2
    assert prefetch_bytes(ranges, None, MIB) == MIB


def test_a_whole_file_of_unknown_size_moves_nothing_known() -> None:
    assert prefetch_bytes(None, None, MIB) == 0
    assert prefetch_bytes(None, 123, MIB) == 123


def test_reads_of_a_whole_file_add_no_bytes() -> None:
    book = RangeBook()
    book.mark_whole("/a")
    assert book.add("/a", 0, 10) == 0 and book.get("/a") is None and "/a" in book


def test_merge_brings_every_path_the_book_did_not_know() -> None:
    mine, other = RangeBook(), RangeBook()
    mine.add("/known", 0, 10)
    other.add("/new1", 0, 10)
    other.mark_whole("/new2")
    other.add("/new3", 5, 15)
    other.add("/known", 20, 30)
    mine.merge(other)
    assert mine.get("/new1") == RangeSet([(0, 10)]) and mine.get("/new3") == RangeSet([(5, 15)])
    assert "/new2" in mine and mine.get("/new2") is None
    assert mine.get("/known") == RangeSet([(0, 10), (20, 30)])


def test_totals_count_files_with_data_and_both_byte_sums() -> None:
    book = RangeBook()
    book.add("/ranged", 0, 10)
    book.mark_whole("/whole")
    book.mark_whole("/whole-unknown-size")
    files = [("/ranged", 100), ("/whole", 40), ("/whole-unknown-size", None), ("/no-data", 50), ("/nothing", None)]
    # with ranges: 10 (exact) + 40 (whole) + 0 (size unknown) + 50 (no data: whole) + 0; whole: every size
    assert totals(files, book, 0) == (3, 100, 190)
    assert totals(files, book, 64) == (3, 154, 190)  # the ranged file's 10 bytes rounded up to 64


def test_a_pair_is_shown_whole_up_to_40_characters() -> None:
    forty, forty_one = [10**9, 10**11, 10**11], [10**9, 10**11, 10**12]
    assert (len(repr(forty)), len(repr(forty_one))) == (40, 41)
    with pytest.raises(ValueError, match=rf"got {re.escape(repr(forty))}$"):
        RangeSet.from_pairs([forty])
    with pytest.raises(ValueError, match=rf"got {re.escape(repr(forty_one)[:37])}\.\.\.$"):
        RangeSet.from_pairs([forty_one])
