"""The evaluation model (issue 21): runs built with answers worked out by hand, each number checked.

Link for the hand-worked cases: 1000 bytes/s, rtt 0.1 s, so a prefetch or on-demand byte count
reads directly as time. Times are exact binary fractions where it matters; the rest compare with
pytest.approx at 1e-12.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from nydus_top.lists.ranges import RangeBook, RangeSet
from nydus_top.model.records import ListedFile
from nydus_top.runs import evaluate as ev
from nydus_top.runs.consensus import Tally, as_entries

LINK = ev.Link(bandwidth=1000.0, rtt=0.1, chunk=0)
EXACT = pytest.approx


def table(*runs: tuple[str, list[ListedFile]], ranges: dict[str, RangeBook] | None = None) -> ev.Table:
    out = ev.Table()
    for name, entries in runs:
        out.add(name, entries, (ranges or {}).get(name))
    return out


RUN_A = ("a", [ListedFile("/a", 1000, 0), ListedFile("/b", 500, 500_000), ListedFile("/c", 2000, 1_000_000)])
LIST = [ListedFile("/a", 1000), ListedFile("/c", 2000), ListedFile("/d", 300)]


def test_stream_policy_known_answers() -> None:
    # prefetch /a arrives at 1.0 s, /c at 3.0 s, /d at 3.3 s.
    # /a read at 0: waits for the prefetch (1.0) rather than on demand (0.1 + 1.0);
    # /b at 0.5: not in the list, on demand 0.1 + 0.5; /c at 1.0: prefetch 3.0 - 1.0 = 2.0 < 2.1.
    (s,) = ev.score_list(table(RUN_A), LIST, None, LINK)
    assert s.file_hit_rate == EXACT(2 / 3)
    assert s.byte_hit_rate == EXACT(3000 / 3500)
    assert s.waste_bytes == 300
    assert s.predicted_stall_s == EXACT(1.0 + 0.6 + 2.0)
    assert s.predicted_start_s == EXACT(1.0 + 3.6)  # the run's last first access is at 1.0 s
    assert (s.files, s.read_bytes, s.list_files, s.prefetch_bytes) == (3, 3500, 3, 3300)


def test_wait_policy_holds_the_start_for_the_whole_prefetch() -> None:
    # held 3.3 s; then /a (arrived 1.0) and /c (3.0) wait nothing, /b is fetched on demand (0.6)
    (s,) = ev.score_list(table(RUN_A), LIST, None, ev.Link(1000.0, 0.1, 0, ev.WAIT))
    assert s.predicted_stall_s == EXACT(3.3 + 0.6)
    assert s.predicted_start_s == EXACT(1.0 + 3.9)


def test_wait_policy_holds_at_most_the_timeout() -> None:
    # held 2.0 s; /a at 2.0 (arrived 1.0): 0; /b on demand 0.6; /c at 3.0 (arrives 3.0): 0
    (s,) = ev.score_list(table(RUN_A), LIST, None, ev.Link(1000.0, 0.1, 0, ev.WAIT, timeout=2.0))
    assert s.predicted_stall_s == EXACT(2.0 + 0.6)


def test_the_runtime_costs_known_answers() -> None:
    # wire 0.5, requests of 400 B paying 0.1 s each: a wire byte costs 1/1000 + 0.1/400 = 1/800 s,
    # a file byte 1/1600 s: 3300 B take 2.0625 s; the rest as before with rate 1600:
    # held: 2.0625 s + unpack at 3300 B/s (1.0 s); /b on demand: 0.1 + 0.05 + 500/1600;
    # the start adds setup 0.25 s
    link = ev.Link(1000.0, 0.1, 0, ev.WAIT, wire=0.5, window=400.0, request_s=0.05, unpack_rate=3300.0,
                   setup_s=0.25)
    assert link.rate == EXACT(1600.0)
    (s,) = ev.score_list(table(RUN_A), LIST, None, link)
    assert s.predicted_stall_s == EXACT(3.0625 + 0.15 + 0.3125)
    assert s.predicted_start_s == EXACT(1.0 + 3.525 + 0.25)


def test_requests_of_a_window_pay_the_rtt_each() -> None:
    assert ev.Link(1000.0, 0.1, window=100.0).rate == EXACT(1 / (1 / 1000 + 0.1 / 100))
    assert ev.Link(1000.0, 0.0, window=1.0).rate == EXACT(1000.0)  # no rtt: requests cost nothing
    assert ev.Link(1000.0, 0.1, wire=0.25).rate == EXACT(4000.0)
    with pytest.raises(ValueError, match="wire"):
        ev.Link(wire=0.0)
    with pytest.raises(ValueError, match="setup_s"):
        ev.Link(setup_s=-1.0)


def test_an_on_demand_fetch_beats_a_late_prefetch() -> None:
    # /big (5000 B) first in the list, /small read at 0 arrives at 5.1 s by prefetch, on demand at 0.2 s
    run = ("r", [ListedFile("/small", 100, 0)])
    (s,) = ev.score_list(table(run), [ListedFile("/big", 5000), ListedFile("/small", 100)], None, LINK)
    assert s.predicted_stall_s == EXACT(0.2)
    assert s.waste_bytes == 5000
    assert (s.file_hit_rate, s.byte_hit_rate) == (1.0, 1.0)


def test_an_empty_list_fetches_everything_on_demand() -> None:
    (s,) = ev.score_list(table(RUN_A), [], None, LINK)
    assert (s.file_hit_rate, s.byte_hit_rate, s.waste_bytes) == (0.0, 0.0, 0)
    assert s.predicted_stall_s == EXACT(1.1 + 0.6 + 2.1)


def test_ranges_count_bytes_and_chunks() -> None:
    # The run read /f [0, 150) of 1000 bytes; the list prefetches /f [100, 250), rounded to 100-byte
    # chunks [100, 300): 200 bytes, arriving at 0.2 s. Covered: [100, 150) = 50 of 150 read.
    # The access needs [0, 200) (rounded): [0, 100) is missing, fetched on demand (0.1 + 0.1)
    # while [100, 200) arrives by prefetch at 0.2: wait max(0.2, 0.2) = 0.2 < all on demand 0.3.
    runs = RangeBook()
    runs.set("/f", RangeSet([(0, 150)]))
    listed = RangeBook()
    listed.set("/f", RangeSet([(100, 250)]))
    link = ev.Link(1000.0, 0.1, 100)
    (s,) = ev.score_list(table(("r", [ListedFile("/f", 1000, 0)]), ranges={"r": runs}),
                         [ListedFile("/f", 1000)], listed, link)
    assert s.read_bytes == 150
    assert s.byte_hit_rate == EXACT(50 / 150)
    assert s.waste_bytes == 150
    assert s.prefetch_bytes == 200
    assert s.predicted_stall_s == EXACT(0.2)
    assert s.file_hit_rate == 1.0


def test_a_list_entry_without_size_takes_the_runs_size() -> None:
    (s,) = ev.score_list(table(RUN_A), [ListedFile("/c")], None, LINK)
    assert s.prefetch_bytes == 2000


def test_leave_one_out_known_answer() -> None:
    # x and y read /a then /b; z reads /a then /c. min share 0.5 of the other two runs = 1 run.
    # x against {y, z}: /a (median position 0), then /b and /c both at position 1, /b first by time.
    x = ("x", [ListedFile("/a", 100, 0), ListedFile("/b", 200, 100_000)])
    y = ("y", [ListedFile("/a", 100, 0), ListedFile("/b", 200, 100_000)])
    z = ("z", [ListedFile("/a", 100, 0), ListedFile("/c", 400, 200_000)])
    scores = ev.leave_one_out(table(x, y, z), LINK, 0.5)
    sx, sy, sz = scores
    assert sx.against == "others" and sx.list_files == 3 and sx.prefetch_bytes == 700
    assert sx.waste_bytes == 400  # /c
    # /a arrives at 0.1 (read at 0: 0.1 < 0.2 on demand), /b at 0.3 (read at 0.1: 0.2 < 0.3)
    assert sx.predicted_stall_s == EXACT(0.1 + 0.2)
    # z against {x, y}: /a, /b; /c not held: on demand 0.1 + 0.4
    assert sz.list_files == 2 and sz.file_hit_rate == 0.5 and sz.waste_bytes == 200
    assert sz.predicted_stall_s == EXACT(0.1 + 0.5)
    assert sz.byte_hit_rate == EXACT(100 / 500)
    mean = ev.mean(scores)
    assert mean.runs == 3
    assert mean.predicted_stall_s == EXACT((0.3 + 0.3 + 0.6) / 3)
    assert mean.file_hit_rate == EXACT((1 + 1 + 0.5) / 3)


def _random_runs(rng: random.Random, count: int) -> list[tuple[str, list[ListedFile]]]:
    pool = [f"/f{i}" for i in range(25)]
    runs = []
    for n in range(count):
        paths = rng.sample(pool, rng.randrange(1, 20))
        entries = [ListedFile(p, rng.choice([None, rng.randrange(1, 5000)]),
                              rng.choice([None, rng.randrange(0, 3_000_000)])) for p in paths]
        runs.append((f"run{n}", entries))
    return runs


@pytest.mark.parametrize("seed", range(30))
def test_leave_one_out_is_the_consensus_of_the_others(seed: int) -> None:
    """The fast leave-one-out (medians without one value, no recount) equals scoring each run
    against the list Tally builds from the other runs, at every share."""
    rng = random.Random(seed)
    runs = _random_runs(rng, rng.randrange(1, 7))
    share = rng.choice([0.1, 0.34, 0.5, 0.75, 1.0])
    link = ev.Link(rng.choice([500.0, 5000.0]), rng.choice([0.0, 0.05]), 0, rng.choice(ev.POLICIES), timeout=1.5)
    t = table(*runs)
    fast = ev.leave_one_out(t, link, share)
    for k, (_name, _entries) in enumerate(runs):
        tally = Tally()
        for j, (other, entries) in enumerate(runs):
            if j != k:
                tally.add(entries, name=other)
        listed = as_entries(tally.consensus(share)) if tally.runs else []
        view = ev.list_view(t, listed, None, 0)
        slow = ev.score(t, k, view, link, against="others")
        assert fast[k] == slow
        general = ev.score(t, k, view, link, against="others", steps=[])  # the path that handles ranges
        assert general.predicted_stall_s == EXACT(slow.predicted_stall_s)
        assert general.predicted_start_s == EXACT(slow.predicted_start_s)
        assert dataclasses.replace(general, predicted_stall_s=0.0, predicted_start_s=0.0) == dataclasses.replace(
            slow, predicted_stall_s=0.0, predicted_start_s=0.0)


def test_waterfall_rows_follow_first_access() -> None:
    steps, s = ev.waterfall(table(RUN_A), 0, LIST, None, LINK)
    assert [(st.path, st.access_s, st.arrival_s, st.read_bytes) for st in steps] == [
        ("/a", 0.0, 1.0, 1000), ("/b", 0.5, None, 500), ("/c", 1.0, 3.0, 2000)]
    assert [st.wait_s for st in steps] == EXACT([1.0, 0.6, 2.0])
    assert [st.on_demand for st in steps] == [False, True, False]
    assert sum(st.wait_s for st in steps) == EXACT(s.predicted_stall_s)


def test_sweep_and_auto_pick_the_smallest_list_near_the_best_stall() -> None:
    # Four runs read /a; one also reads a big /rare late. Keeping /rare (share 0.25) saves no
    # stall for the others but costs them nothing either under stream; auto takes the smaller list.
    common = [ListedFile("/a", 100, 0)]
    runs = [(f"r{n}", list(common)) for n in range(3)] + [("r3", [*common, ListedFile("/rare", 9000, 10_000_000)])]
    t = table(*runs)
    points = ev.sweep(t, LINK)
    assert [p.share for p in points] == [0.25, 0.5, 0.75, 1.0]
    assert [p.list_files for p in points] == [2, 1, 1, 1]
    assert ev.auto_share(points) == 1.0
    # Under wait, the big file in the list (share 0.25 keeps it for r0..r2's others) holds their starts.
    waited = ev.sweep(t, ev.Link(1000.0, 0.1, 0, ev.WAIT))
    assert waited[0].mean.predicted_stall_s > waited[-1].mean.predicted_stall_s


def test_auto_share_takes_the_smallest_list_within_one_percent() -> None:
    def point(share: float, files: int, stall: float) -> ev.Point:
        return ev.Point(share, files, ev.Summary(3, 1.0, 1.0, 0.0, stall, stall, files, 0.0))

    points = [point(0.25, 90, 1.000), point(0.5, 50, 1.009), point(0.75, 20, 1.011), point(1.0, 5, 3.0)]
    assert ev.auto_share(points) == 0.5


@pytest.mark.parametrize(("text", "value"), [("100Mbit", 12.5e6), ("1Gbit", 125e6), ("12.5MB", 12.5e6),
                                             ("1000", 1000.0), ("8kbit/s", 1000.0)])
def test_bandwidth_units(text: str, value: float) -> None:
    assert ev.parse_bandwidth(text) == EXACT(value)


@pytest.mark.parametrize(("text", "value"), [("20ms", 0.02), ("0.5s", 0.5), ("500us", 0.0005), ("0", 0.0)])
def test_duration_units(text: str, value: float) -> None:
    assert ev.parse_seconds(text) == EXACT(value)


@pytest.mark.parametrize("text", ["fast", "0Mbit", "-1Mbit", ""])
def test_bad_bandwidths_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ev.parse_bandwidth(text)


def test_hostile_sizes_and_times_are_held_to_the_largest_counted() -> None:
    """A list file's numbers are unbounded integers: one beyond 64 bits must not crash the
    evaluation (it counts as 2^60), a negative one counts as unknown."""
    huge = 10**30
    t = table(("r", [ListedFile("/a", huge, huge), ListedFile("/b", -5, -5)]))
    (s,) = ev.score_list(t, [ListedFile("/a")], None, LINK)
    assert s.read_bytes == 1 << 60 and s.prefetch_bytes == 1 << 60 and s.files == 2


def test_shares_tried_are_at_most_max_shares() -> None:
    assert ev.shares(4) == [0.25, 0.5, 0.75, 1.0]
    assert len(ev.shares(ev.MAX_SHARES)) == ev.MAX_SHARES
    assert ev.shares(ev.MAX_SHARES + 1) == [j / ev.MAX_SHARES for j in range(1, ev.MAX_SHARES + 1)]


@pytest.mark.parametrize("seed", range(15))
def test_leave_one_out_with_ranges_is_the_consensus_of_the_others(seed: int) -> None:
    """With byte ranges: the list of the others carries the union of their ranges (WHOLE wins),
    as the stability view's saved consensus does (runset.union_ranges)."""
    from nydus_top.runs.runset import Run, union_ranges

    rng = random.Random(1000 + seed)
    runs = _random_runs(rng, rng.randrange(2, 6))
    books: dict[str, RangeBook] = {}
    for name, entries in runs:
        if rng.random() < 0.8:
            book = books[name] = RangeBook()
            for entry in entries:
                if rng.random() < 0.7:
                    pick = rng.choice(["whole", "same", "random"])
                    if pick == "whole":
                        book.mark_whole(entry.path)
                    elif pick == "same":
                        book.set(entry.path, RangeSet([(0, 100)]))
                    else:
                        start = rng.randrange(0, 4000)
                        book.set(entry.path, RangeSet([(start, start + rng.randrange(1, 3000))]))
    share = rng.choice([0.25, 0.5, 1.0])
    link = ev.Link(rng.choice([500.0, 5000.0]), 0.05, rng.choice([0, 64, 1024]), rng.choice(ev.POLICIES))
    t = table(*runs, ranges=books)
    fast = ev.leave_one_out(t, link, share)
    for k in range(len(runs)):
        others = [Run(name, entries, ranges=books.get(name)) for j, (name, entries) in enumerate(runs) if j != k]
        tally = Tally()
        for run in others:
            tally.add(run.entries, name=run.name)
        listed = as_entries(tally.consensus(share))
        slow = ev.score(t, k, ev.list_view(t, listed, union_ranges(others), link.chunk), link, against="others")
        assert fast[k] == slow


def test_a_sweep_stops_when_asked() -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    t = table(RUN_A, ("b", RUN_A[1]), ("c", RUN_A[1]))
    with pytest.raises(ev.Cancelled):
        ev.sweep(t, LINK, stop=stop)
    assert len(asked) == 3  # asked before each held-out run; the third said stop
    assert len(ev.sweep(t, LINK, stop=lambda: False)) == 3


@pytest.mark.parametrize("huge", [1 << 63, 1 << 64, 1 << 70])
def test_a_list_size_beyond_any_range_is_scored_not_raised(huge: int) -> None:
    # A list file (hostile input) may say any size; a run with ranges was scored against
    # RangeSet([(0, size)]), whose unsigned 64-bit array raised OverflowError from 2**64 (a
    # traceback from `nydus-top evaluate`). No range ends past MAX_RANGE_END, so the list's file
    # covers the whole read.
    runs = RangeBook()
    runs.set("/f", RangeSet([(0, 150)]))
    link = ev.Link(1000.0, 0.1, 100)
    (s,) = ev.score_list(table(("r", [ListedFile("/f", 1000, 0)]), ranges={"r": runs}),
                         [ListedFile("/f", huge)], None, link)
    assert (s.read_bytes, s.byte_hit_rate, s.file_hit_rate) == (150, 1.0, 1.0)
