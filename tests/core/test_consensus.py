"""Stability and consensus over runs: shares, medians, spreads, order and the min-share edge."""

from __future__ import annotations

import random
import statistics

import pytest

from nydus_top.model.records import ListedFile
from nydus_top.runs.consensus import Tally, as_entries, tally


def run(*paths: str, step: int = 10) -> list[ListedFile]:
    return [ListedFile(path, 100 + i, i * step) for i, path in enumerate(paths)]


def test_fixed_set_kept_noise_dropped_and_shuffled_pair_adjacent() -> None:
    fixed = [f"/app/f{i}" for i in range(8)]
    rng = random.Random(7)
    t = Tally()
    for n in range(10):
        pair = ["/app/x", "/app/y"]
        rng.shuffle(pair)
        t.add(run(*fixed[:4], *pair, *fixed[4:], f"/tmp/random-{n}"), name=f"r{n}")
    chosen = [f.path for f in t.consensus(0.5)]
    assert chosen[:4] == fixed[:4] and chosen[6:] == fixed[4:]
    assert sorted(chosen[4:6]) == ["/app/x", "/app/y"]
    noise = [f for f in t.stability() if f.path.startswith("/tmp/random-")]
    assert len(noise) == 10 and all((f.seen, f.runs) == (1, 10) for f in noise)


def test_share_at_the_limit_counts_exactly() -> None:
    t = tally([run("/a", "/b"), run("/a", "/b"), run("/a"), run("/a")])
    assert [f.path for f in t.consensus(0.5)] == ["/a", "/b"]  # 2 of 4 is exactly 0.5
    assert [f.path for f in t.consensus(0.51)] == ["/a"]
    assert [f.path for f in t.consensus(1.0)] == ["/a"]
    t3 = tally([run("/a", "/b"), run("/a"), run("/a")])
    assert [f.path for f in t3.consensus(1 / 3)] == ["/a", "/b"]  # float 1/3 * 3 is not exactly 1
    with pytest.raises(ValueError):
        t.consensus(0)


def test_medians_and_spreads() -> None:
    t = Tally()
    t.add([ListedFile("/a", 1, 100), ListedFile("/b", 5, 200)])
    t.add([ListedFile("/b", 7, 50), ListedFile("/a", 1, 300)])
    t.add([ListedFile("/a", 1, 200), ListedFile("/c", None, None), ListedFile("/b", 6, 400)])
    by_path = {f.path: f for f in t.stability()}
    a, b, c = by_path["/a"], by_path["/b"], by_path["/c"]
    assert (a.position, a.position_spread, a.elapsed_us, a.elapsed_spread_us) == (0.0, 1, 200.0, 200)
    assert (b.position, b.position_spread, b.elapsed_us, b.size) == (1.0, 2, 200.0, 7)
    assert (c.seen, c.elapsed_us, c.elapsed_spread_us, c.size) == (1, None, None, None)
    assert abs(b.share - 1.0) < 1e-12 and abs(c.share - 1 / 3) < 1e-12


def test_order_is_median_position_then_time_then_path() -> None:
    t = tally([run("/b", "/a"), run("/a", "/b")])  # both median 0.5, same median time
    assert [f.path for f in t.stability()] == ["/a", "/b"]
    t = Tally()
    t.add([ListedFile("/late", None, 900), ListedFile("/early", None, 5)])
    t.add([ListedFile("/early", None, 5), ListedFile("/late", None, 900)])
    assert [f.path for f in t.stability()] == ["/early", "/late"]


def test_repeats_within_a_run_count_once_and_runtime_flags_stick() -> None:
    t = Tally()
    t.add(run("/a", "/a", "/b"), runtime=["/b", "/not-seen"])
    t.add(run("/b", "/a"))
    by_path = {f.path: f for f in t.stability()}
    assert by_path["/a"].seen == 2 and by_path["/b"].runtime_created and not by_path["/a"].runtime_created
    assert "/not-seen" not in by_path and t.distinct == 2


def test_consensus_entries_are_listable() -> None:
    t = tally([[ListedFile("/a", 10, 3)], [ListedFile("/a", 12, 4)]])
    (entry,) = as_entries(t.consensus())
    assert (entry.path, entry.size, entry.elapsed_us) == ("/a", 12, 4)  # largest size, median time rounded


def test_the_median_of_an_even_count_is_the_mean_of_the_two_middle_values() -> None:
    t = Tally()
    t.add([ListedFile("/x", 1, 100)])
    t.add([ListedFile("/a", 1, 0), ListedFile("/b", 1, 0), ListedFile("/c", 1, 0), ListedFile("/x", 1, 400)])
    t.add([ListedFile("/a", 1, 0), ListedFile("/x", 1, 200)])
    t.add([ListedFile("/x", 1, 300)])
    x = {f.path: f for f in t.stability()}["/x"]
    # positions 0, 3, 1, 0 -> 0, 0, 1, 3: median 0.5 (neither middle alone); times 100..400 -> 250
    assert (x.position, x.elapsed_us, x.elapsed) == (0.5, 250.0, 250)
    (entry,) = [e for e in as_entries(t.consensus(1.0)) if e.path == "/x"]
    assert entry.elapsed_us == 250


def test_the_compact_order_is_the_sort_by_median_position_time_and_path() -> None:
    """The counting sort over twice the median position, ties by time then path, against a plain
    sort of every file's figures; entries made one at a time are what as_entries makes."""
    rng = random.Random(18)
    t = Tally()
    for n in range(7):
        paths = [f"/p/{rng.randrange(60)}" for _ in range(rng.randrange(1, 50))]
        t.add([ListedFile(p, rng.choice([None, rng.randrange(1000)]), rng.choice([None, rng.randrange(5) * 10]))
               for p in paths], name=f"r{n}")
    files = t.stability()
    assert files == sorted(files, key=lambda f: (f.position, f.elapsed_us if f.elapsed_us is not None
                                                 else float("inf"), f.path))
    assert len(files) == t.distinct and len({f.path for f in files}) == len(files)
    assert [t.entry(fid) for fid in t.order()] == as_entries(files)
    kept = t.consensus(0.5)
    assert kept == [f for f in files if f.seen >= 4] and [t.summary(f) for f in t.consensus_order(0.5)] == kept


def test_a_runtime_path_flags_files_read_by_that_run_or_an_earlier_one() -> None:
    t = Tally()
    t.add(run("/a", "/b"), runtime=["/later"])  # not read yet: not flagged
    t.add(run("/later", "/c"), runtime=["/a", "/none"])  # /a read by the run before
    flags = {f.path: f.runtime_created for f in t.stability()}
    assert flags == {"/a": True, "/b": False, "/later": False, "/c": False}


def test_a_time_beyond_float_precision_is_rounded_as_its_median() -> None:
    t = Tally()
    t.add([ListedFile("/a", 5, 2**60 + 1)])
    assert t.entry(0) == as_entries(t.stability())[0] and t.entry(0).elapsed_us == 2**60


def test_a_tally_of_one_run_is_that_run_in_its_order() -> None:
    """One run needs no index: its files in its order, each at its own position and time."""
    t = Tally()
    t.add([ListedFile("/b", -5, 30), ListedFile("/a", None, None), ListedFile("/b", 9, 9),
           ListedFile("/c", 7, 2**60 + 1)], runtime=["/a", "/none"])
    assert [(f.path, f.seen, f.runs, f.position, f.elapsed_us, f.size, f.runtime_created) for f in t.stability()] == [
        ("/b", 1, 1, 0.0, 30.0, None, False), ("/a", 1, 1, 1.0, None, None, True),
        ("/c", 1, 1, 2.0, float(2**60 + 1), 7, False)]
    assert [t.entry(fid) for fid in t.order()] == as_entries(t.stability()) and t.distinct == 3
    assert t.consensus(1.0) == t.stability() and t.stability(min_seen=2) == []


def test_every_figure_is_that_of_the_runs_counted_plainly() -> None:
    """Sizes (the largest of any run, sizes raised only where larger), medians and spreads against
    a plain count of random runs, with repeats, unknown sizes and times."""
    rng = random.Random(7)
    runs = [[ListedFile(f"/p/{rng.randrange(40)}", rng.choice([None, rng.randrange(100)]),
                        rng.choice([None, rng.randrange(50)])) for _ in range(rng.randrange(1, 60))] for _ in range(9)]
    t = tally(runs)
    plain: dict[str, list[tuple[int, int | None, int | None]]] = {}
    for run in runs:
        seen: set[str] = set()
        for e in run:
            if e.path not in seen:
                plain.setdefault(e.path, []).append((len(seen), e.size, e.elapsed_us))
                seen.add(e.path)
    for f in t.stability():
        figures = plain[f.path]
        positions = [p for p, _, _ in figures]
        sizes = [z for _, z, _ in figures if z is not None]
        times = [e for _, _, e in figures if e is not None]
        assert (f.seen, f.position, f.position_spread, f.size) == (
            len(figures), statistics.median(positions), max(positions) - min(positions), max(sizes, default=None))
        assert (f.elapsed_us, f.elapsed_spread_us) == ((statistics.median(times), max(times) - min(times)) if times
                                                       else (None, None))
