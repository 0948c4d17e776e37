"""The tally's figures exactly, at their edges: a file read by one run, runs without a time, the
smallest count that makes a share, run names, and the order's time tie-break. Written to kill the
mutants scripts/mutation found surviving (issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import pytest

from nydus_top.model.records import ListedFile
from nydus_top.runs.consensus import FileStability, Tally


def test_a_file_read_by_one_run_has_its_own_figures_and_no_spread() -> None:
    t = Tally()
    t.add([ListedFile("/a", 10, 7), ListedFile("/b", 20, 9)], runtime=["/b"])
    t.add([ListedFile("/a", 10, 8)])
    by_path = {f.path: f for f in t.stability()}
    assert by_path["/b"] == FileStability("/b", 1, 2, 1.0, 0, 9.0, 0, 20, True)
    t.add([ListedFile("/c", None, None)])
    by_path = {f.path: f for f in t.stability()}
    assert by_path["/c"] == FileStability("/c", 1, 3, 0.0, 0, None, None, None, False)
    assert by_path["/a"].runtime_created is False


def test_runs_without_a_time_are_left_out_of_the_time_figures() -> None:
    t = Tally()
    t.add([ListedFile("/x", 1, None), ListedFile("/y", 1, None)])
    t.add([ListedFile("/x", 1, 300), ListedFile("/y", 1, None)])
    t.add([ListedFile("/x", 1, None), ListedFile("/y", 1, None)])
    by_path = {f.path: f for f in t.stability()}
    x, y = by_path["/x"], by_path["/y"]
    assert (x.elapsed_us, x.elapsed_spread_us, x.elapsed) == (300.0, 0, 300)
    assert (y.elapsed_us, y.elapsed_spread_us, y.elapsed) == (None, None, None)
    t.add([ListedFile("/x", 1, 100)])
    x = {f.path: f for f in t.stability()}["/x"]
    assert (x.elapsed_us, x.elapsed_spread_us) == (200.0, 200)  # 100 and 300; the runs without a time left out


def test_the_position_spread_is_largest_minus_smallest() -> None:
    t = Tally()
    t.add([ListedFile("/a", 1, 0), ListedFile("/b", 1, 0), ListedFile("/x", 1, 0)])
    t.add([ListedFile(f"/{n}", 1, 0) for n in "abcde"] + [ListedFile("/x", 1, 0)])
    x = {f.path: f for f in t.stability()}["/x"]
    assert (x.position, x.position_spread) == (3.5, 3)  # positions 2 and 5


@pytest.mark.parametrize(("runs", "min_share", "seen", "kept"),
                         [(5, 0.5, 3, True), (5, 0.5, 2, False), (7, 0.5, 4, True), (10, 0.35, 4, True),
                          (10, 0.35, 3, False), (9, 0.7, 7, True), (9, 0.7, 6, False)])
def test_the_fewest_runs_that_make_the_share(runs: int, min_share: float, seen: int, kept: bool) -> None:
    t = Tally()
    for n in range(runs):
        t.add([ListedFile("/always", 1, 0)] + ([ListedFile("/f", 1, 0)] if n < seen else []))
    assert ("/f" in [f.path for f in t.consensus(min_share)]) is kept


@pytest.mark.parametrize("min_share", [0.0, -0.5, 1.5, 2.0])
def test_a_share_outside_0_to_1_is_refused_in_one_line(min_share: float) -> None:
    t = Tally()
    t.add([ListedFile("/a", 1, 0)])
    with pytest.raises(ValueError, match=rf"^min share must be in \(0, 1\], got {min_share}$"):
        t.consensus(min_share)


def test_runs_are_named_as_given_or_by_their_number() -> None:
    t = Tally()
    t.add([ListedFile("/a", 1, 0)])
    t.add([ListedFile("/a", 1, 0)], name="cold start")
    t.add([ListedFile("/a", 1, 0)])
    assert t.names == ["run 1", "cold start", "run 3"]


def test_a_tie_in_position_goes_to_the_earlier_median_time_before_the_path() -> None:
    t = Tally()
    t.add([ListedFile("/a-late", None, 900), ListedFile("/b-early", None, 5)])
    t.add([ListedFile("/b-early", None, 5), ListedFile("/a-late", None, 900)])
    t.add([ListedFile("/c-no-time", None, None)])
    t.add([ListedFile("/c-no-time", None, None)])
    assert [f.path for f in t.stability()] == ["/c-no-time", "/b-early", "/a-late"]
    t = Tally()
    t.add([ListedFile("/b-timed", None, 900), ListedFile("/a-untimed", None, None)])
    t.add([ListedFile("/a-untimed", None, None), ListedFile("/b-timed", None, 900)])
    assert [f.path for f in t.stability()] == ["/b-timed", "/a-untimed"]  # no time sorts after any time
