"""The C loops (native/tally.c) against the plain Python they replace, on random and edge-case
runs: every array they build is compared element by element; bad ids leave the C path unused."""

from __future__ import annotations

import random
from array import array
from itertools import pairwise

import pytest

from nydus_top.lists.paths import ListColumns
from nydus_top.model.records import ListedFile
from nydus_top.runs import consensus, groups, native_loops
from nydus_top.runs import evaluate as ev

_NONE = -1

pytestmark = pytest.mark.skipif(not native_loops.AVAILABLE, reason="nydus_top._native is not built")


def random_runs(rng: random.Random, runs: int, files: int, *, every: int = 0) -> list[ListColumns]:
    """*runs* runs over ids below *files* (each id once a run, random order), sizes and times
    sometimes _NONE; the first *every* ids are in every run."""
    out = []
    for _ in range(runs):
        chosen = list(range(every)) + rng.sample(range(every, files), rng.randrange(0, files - every + 1))
        rng.shuffle(chosen)
        sizes = [_NONE if rng.random() < 0.2 else rng.choice([0, rng.randrange(1 << 20), 1 << 60]) for _ in chosen]
        times = [_NONE if rng.random() < 0.2 else rng.randrange(1 << 40) for _ in chosen]
        out.append(ListColumns(array("i", chosen), array("q", sizes), array("q", times)))
    return out


def refused(*args: object) -> None:
    raise AssertionError("the C path declined")


CASES = [(0, 5, 0), (1, 0, 0), (1, 7, 0), (1, 7, 7), (2, 3, 3), (3, 50, 10), (12, 200, 40), (40, 30, 0)]


@pytest.mark.parametrize(("runs", "files", "every"), CASES)
def test_the_grouping_is_the_plain_one(runs: int, files: int, every: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(runs * 1000 + files)
    plain_group = groups._group_py
    monkeypatch.setattr(groups, "_group_py", refused)  # the C path must not decline here
    for trial in range(5):
        columns = random_runs(rng, runs, files, every=every)
        assert groups.group(columns, files) == plain_group(columns, files), (runs, trial)


def test_the_grouping_of_empty_runs_and_of_no_runs() -> None:
    empty = ListColumns(array("i"), array("q"), array("q"))
    assert groups.group([empty, empty], 0) == groups._group_py([empty, empty], 0)
    assert groups.group([], 4) == groups._group_py([], 4) == groups.Groups(array("q", [0] * 5), array("i"),
                                                                           array("q"), array("q"))


def test_an_id_out_of_range_is_refused_and_nothing_is_written() -> None:
    counts = array("q", [0, 0, 0])
    for bad in (array("i", [0, 3]), array("i", [-1]), array("i", [1, 2, 2**31 - 1])):
        assert not native_loops.count_ids(bad, counts)
        assert counts == array("q", [0, 0, 0])
        values = array("q", [9] * len(bad))
        positions, times, sizes = array("i", [0] * 3), array("q", [0] * 3), array("q", [0] * 3)
        assert not native_loops.scatter(bad, values, values, array("q", [0, 1, 2]), positions, times, sizes)
        assert (positions, times, sizes) == (array("i", [0] * 3), array("q", [0] * 3), array("q", [0] * 3))


def test_scatter_refuses_a_cursor_past_the_end() -> None:
    ids, times, sizes = array("i", [0, 1]), array("q", [7, 8]), array("q", [5, 6])
    positions, out, out_sizes = array("i", [0, 0]), array("q", [0, 0]), array("q", [0, 0])
    assert not native_loops.scatter(ids, times, sizes, array("q", [0, 2]), positions, out, out_sizes)
    assert not native_loops.scatter(ids, times, sizes, array("q", [0, -1]), positions, out, out_sizes)
    assert native_loops.scatter(ids, times, sizes, array("q", [1, 0]), positions, out, out_sizes)
    assert (positions, out, out_sizes) == (array("i", [1, 0]), array("q", [8, 7]), array("q", [6, 5]))


def test_arrays_of_another_type_or_length_are_left_to_python() -> None:
    counts = array("q", [0, 0])
    one, none = array("i", [0]), array("q", [0])
    assert not native_loops.count_ids(array("l", [0]), counts)
    assert not native_loops.count_ids(one, array("i", [0, 0]))
    assert not native_loops.scatter(one, array("q", []), none, counts, one, none, none)
    assert not native_loops.scatter(one, none, array("q", []), counts, one, none, none)
    assert not native_loops.scatter(one, none, none, counts, one, none, array("q", [0, 0]))
    assert not native_loops.scatter(one, none, array("i", [0]), counts, one, none, none)


def test_a_bad_id_gives_the_plain_pythons_answer() -> None:
    bad = [ListColumns(array("i", [0, 5]), array("q", [1, 1]), array("q", [1, 1]))]
    with pytest.raises(IndexError):
        groups._group_py(bad, 3)
    with pytest.raises(IndexError):
        groups.group(bad, 3)


# ---------------------------------------------------------------- evaluation

PATHS = ["/a", "/b", "/ab", "/a/é", "/a/\U0001f600", "/a/\udcff", "/a/\ud800x", "/z", "", "/a\x00", "/b/" + "x" * 40]
LINKS = [ev.Link(), ev.Link(bandwidth=1000.0, rtt=0.1, chunk=0), ev.Link(1000.0, 0.1, 0, ev.WAIT, timeout=2.0),
         ev.Link(bandwidth=3e6, rtt=0.013, window=65536, request_s=0.002, wire=0.7, setup_s=0.4)]


def random_table(rng: random.Random, runs: int, files: int, *, every: int = 0) -> ev.Table:
    """Runs over *files* paths (the first *every* in every run) with few distinct times (ties in
    median position and time, so the path decides) and sizes: None, 0, small, near 2**60."""
    names = [PATHS[i] if i < len(PATHS) else f"/f{i}" for i in range(files)]
    rng.shuffle(names)
    table = ev.Table()
    for r in range(runs):
        chosen = names[:every] + rng.sample(names[every:], rng.randrange(0, files - every + 1))
        rng.shuffle(chosen)
        table.add(f"r{r}", [ListedFile(path, rng.choice([None, 0, 7, 1000, rng.randrange(1 << 20), 1 << 59]),
                                       rng.choice([None, 0, 10, 10, 20, rng.randrange(1 << 40)])) for path in chosen])
    return table


def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every C path off: what follows runs the Python reference."""
    monkeypatch.setattr(native_loops, "lib", None)


TABLES = [(1, 5, 0), (1, 5, 5), (2, 4, 4), (2, 8, 0), (3, 11, 2), (5, 30, 0), (9, 40, 10), (20, 15, 15)]


@pytest.mark.parametrize(("runs", "files", "every"), TABLES)
def test_leave_one_out_sweep_and_scores_are_the_plain_ones(runs: int, files: int, every: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(runs * 100 + files)
    for trial in range(4):
        state = rng.getstate()
        fast = random_table(rng, runs, files, every=every)
        rng.setstate(state)
        slow = random_table(rng, runs, files, every=every)
        listed = [ListedFile(p, rng.choice([None, 5, 1 << 59])) for p in rng.sample(PATHS, 5)]
        got = [(ev.leave_one_out(fast, link, share), ev.sweep(fast, link, [0.2, 0.5, 1.0]),
                ev.score_list(fast, listed, None, link)) for link in LINKS for share in (0.01, 0.5, 1.0)]
        with monkeypatch.context() as m:
            plain(m)
            want = [(ev.leave_one_out(slow, link, share), ev.sweep(slow, link, [0.2, 0.5, 1.0]),
                     ev.score_list(slow, listed, None, link)) for link in LINKS for share in (0.01, 0.5, 1.0)]
        assert got == want, (runs, files, every, trial)


@pytest.mark.parametrize(("runs", "files", "every"), TABLES)
def test_every_held_out_order_is_the_plain_one(runs: int, files: int, every: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(runs * 7 + files)
    plain_order = ev._order_without_py
    monkeypatch.setattr(groups, "_group_py", refused)  # the C paths must not decline here
    monkeypatch.setattr(ev, "_order_without_py", refused)
    for _ in range(4):
        table = random_table(rng, runs, files, every=every)
        if runs < 2:
            continue
        for k in range(runs):
            for min_seen, mine_seen in ((1, 0), (1, 1), (2, 0), (2, 2), (runs, runs), (runs + 1, 0)):
                keys = plain_order(table, k, min_seen, mine_seen)
                want = ([key[3] for key in keys], [key[4] for key in keys], [key[5] for key in keys])
                got = ev._order_without(table, k, min_seen, mine_seen)
                assert (got.ids.tolist(), got.seen.tolist(), got.sizes.tolist()) == want


def test_scores_the_c_path_declines_are_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sums beyond 64 bits (sizes near 2**60 in every run, a list's size beyond 2**63): Python's."""
    huge = ev.Table()
    for r in range(12):
        huge.add(f"r{r}", [ListedFile(f"/f{i}", 1 << 60, 10 * i) for i in range(10)])
    listed = [ListedFile("/f1", 1 << 70), ListedFile("/f2", None)]
    declined = []
    real = native_loops.score_whole

    def counted(*args: object) -> object:
        got = real(*args)  # type: ignore[arg-type]
        declined.append(got is None)
        return got

    monkeypatch.setattr(native_loops, "score_whole", counted)
    got = (ev.leave_one_out(huge, ev.Link()), ev.score_list(huge, listed, None, ev.Link()))
    assert declined and all(declined)
    plain(monkeypatch)
    assert got == (ev.leave_one_out(huge, ev.Link()), ev.score_list(huge, listed, None, ev.Link()))


def test_score_whole_refuses_ids_out_of_range() -> None:
    one, none = array("i", [0]), array("q", [1])
    assert native_loops.score_whole(array("i", [3]), none, one, none, none, 3, 1.0, 0.0, 0.0) is None
    assert native_loops.score_whole(one, none, array("i", [-1]), none, none, 3, 1.0, 0.0, 0.0) is None
    assert native_loops.score_whole(one, none, one, none, none, 3, 1.0, 0.0, 0.0) == (1, 1, 1, 1 / 1.0 - 0.0 - 1 / 1e6)


def test_order_without_refuses_ids_and_paths_out_of_range() -> None:
    rows = native_loops.held_rows(2, [(0, (2, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 5, 5))])
    base = native_loops.key_rows([(1.0, 2.0, "/x", 1, 1, 3)])
    blob, ends = bytearray(b"/a/x"), array("q", [2, 4])
    one, none = array("i", [0]), array("q", [1])
    assert native_loops.order_without(rows, one, none, none, 1, base, (blob, ends)) is not None
    assert native_loops.order_without(rows, array("i", [2]), none, none, 1, base, (blob, ends)) is None
    assert native_loops.order_without(rows, one, none, none, 1, base, (blob, array("q", [2, 5]))) is None
    assert native_loops.order_without(rows, one, none, none, 1, base, (blob, array("q", [2]))) is None
    assert native_loops.order_without(rows, one, none, none, 1, native_loops.key_rows([(1.0, 2.0, "", 2, 1, 3)]),
                                      (blob, ends)) is None
    assert native_loops.held_rows(2, [(2, (2, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 5, 5))]) is None
    assert rows is not None
    rows.row_of[0] = 1  # a row past the last one
    assert native_loops.order_without(rows, one, none, none, 1, base, (blob, ends)) is None
    blob += b"more"  # nothing holds the path buffer after a call


def test_bounds_and_group_sorts_are_the_plain_ones() -> None:
    rng = random.Random(3)
    assert native_loops.bounds(array("q")) == (0, 0)
    for n in (1, 2, 17, 500):
        values = array("q", [rng.randrange(-(1 << 63), 1 << 63) for _ in range(n)])
        assert native_loops.bounds(values) == (min(values), max(values))
        starts = array("q", sorted([0, n, *(rng.randrange(n + 1) for _ in range(rng.randrange(6)))]))
        for typecode, top in (("q", 1 << 62), ("i", 1 << 30)):
            group = array(typecode, [rng.randrange(-top, top) for _ in range(n)])
            want = array(typecode, [v for a, b in pairwise(starts) for v in sorted(group[a:b])])
            assert native_loops.sort_groups(starts, group) and group == want
    assert native_loops.bounds(array("i", [1])) is None


def test_group_sorts_refuse_starts_that_do_not_rise_from_zero_to_the_end() -> None:
    for starts in ([1, 3], [0, 2], [0, 2, 1, 3], [0, 4], [-1, 3]):
        values = array("q", [3, 2, 1])
        assert not native_loops.sort_groups(array("q", starts), values)
        assert values == array("q", [3, 2, 1])


@pytest.mark.parametrize(("runs", "files", "every"), CASES)
def test_the_consensus_order_is_the_plain_one(runs: int, files: int, every: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(runs * 31 + files)
    plain_order = consensus._consensus_order_py
    monkeypatch.setattr(consensus, "_consensus_order_py", refused)
    for _ in range(4):
        tally = consensus.Tally()
        names = [PATHS[i] if i < len(PATHS) else f"/f{i}" for i in range(files)]
        for r in range(runs):
            chosen = names[:every] + rng.sample(names[every:], rng.randrange(0, files - every + 1))
            rng.shuffle(chosen)
            tally.add([ListedFile(p, rng.choice([None, 3]), rng.choice([None, 5, 9])) for p in chosen], name=f"r{r}")
        if runs < 2:
            continue  # one run: its own order, no index
        for min_seen in range(1, runs + 2):
            assert consensus._consensus_order(tally, min_seen) == plain_order(tally, min_seen)


def test_order_by_key_is_a_stable_counting_sort() -> None:
    rng = random.Random(5)
    for n in (0, 1, 9, 300):
        keys = array("i", [rng.choice([-1, rng.randrange(40)]) for _ in range(n)])
        want = sorted((k for k in range(n) if keys[k] >= 0), key=lambda k: (keys[k], k))
        assert native_loops.order_by_key(keys) == array("i", want)
    assert native_loops.median_keys(array("q", [0, 2, 1]), array("i", [4, 5]), 1) is None  # starts fall
    assert native_loops.median_keys(array("q", [0, 1, 3]), array("i", [7, 2**31 - 1, 2**31 - 1]), 1) is None
    assert native_loops.median_keys(array("q", [0, 1, 3]), array("i", [7, 9, 1]), 2) == array("i", [-1, 10])


def test_held_rows_keep_their_file_rows_from_being_resized() -> None:
    """The C rows point into row_of: while they live it cannot move (a resize would leave C
    reading freed memory, with len() of the new size)."""
    rows = native_loops.held_rows(2, [(0, (2, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 5, 5))])
    assert rows is not None
    with pytest.raises(BufferError):
        rows.row_of.extend([-1] * 100_000)
    assert len(rows) == 2


def test_a_stall_of_minus_zero_is_kept_as_python_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python adds nothing for a listed file that waits for nothing; C adding 0.0 would turn a
    held start of -0.0 (a WAIT link with a timeout of -0.0) into 0.0."""
    one, zero = array("i", [0]), array("q", [0])
    got = native_loops.score_whole(one, array("q", [5]), one, zero, zero, 1, 1.0, 0.0, -0.0)
    assert got is not None and repr(got[3]) == "-0.0"
    table = ev.Table()
    for r in range(3):
        table.add(f"r{r}", [ListedFile("/a", 0, 5)])
    link = ev.Link(policy=ev.WAIT, timeout=-0.0)
    listed = [ListedFile("/a", 100)]
    fast = [repr(s.as_json()) for s in ev.score_list(table, listed, None, link)]
    plain(monkeypatch)
    assert fast == [repr(s.as_json()) for s in ev.score_list(table, listed, None, link)]


def test_a_least_count_beyond_64_bits_is_left_to_python() -> None:
    """Tally.order takes any int: one C's long cannot hold is declined, not an OverflowError."""
    assert native_loops.median_keys(array("q", [0, 2]), array("i", [1, 3]), 1 << 70) is None
    tally = consensus.Tally()
    for _ in range(2):
        tally.add([ListedFile("/a", 1, 1), ListedFile("/b", 2, 2)])
    assert tally.order(min_seen=1 << 70) == consensus._consensus_order_py(tally, 1 << 70) == array("i")


def test_a_held_start_of_an_int_is_kept_as_python_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A WAIT link's timeout given as an int holds the start for an int of seconds: Python's stall
    stays that int where nothing is added to it; C's double would make it a float (JSON 2.0, not 2)."""
    table = ev.Table()
    for r in range(2):
        table.add(f"r{r}", [ListedFile("/a", 0, 5)])
    link = ev.Link(bandwidth=10.0, policy=ev.WAIT, timeout=2)
    listed = [ListedFile("/a", 100)]
    fast = [repr(s.as_json()) for s in ev.score_list(table, listed, None, link)]
    plain(monkeypatch)
    assert fast == [repr(s.as_json()) for s in ev.score_list(table, listed, None, link)]
