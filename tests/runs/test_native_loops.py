"""The C loops (native/tally.c) against the plain Python they replace, on random and edge-case
runs: every array they build is compared element by element; bad ids leave the C path unused."""

from __future__ import annotations

import random
from array import array

import pytest

from nydus_top.lists.paths import ListColumns
from nydus_top.runs import consensus, native_loops

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
def test_the_consensus_index_is_the_plain_one(runs: int, files: int, every: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(runs * 1000 + files)
    plain_index = consensus._index_py
    monkeypatch.setattr(consensus, "_index_py", refused)  # the C path must not decline here
    for trial in range(5):
        columns = random_runs(rng, runs, files, every=every)
        flags = rng.randrange(4) if runs and files else 0
        runtime = [(rng.randrange(runs), rng.randrange(files)) for _ in range(flags)]
        assert consensus._index(columns, files, runtime) == plain_index(columns, files, runtime), (runs, trial)


def test_the_consensus_of_empty_runs_and_of_no_runs() -> None:
    empty = ListColumns(array("i"), array("q"), array("q"))
    assert consensus._index([empty, empty], 0, []) == consensus._index_py([empty, empty], 0, [])
    assert consensus._index([], 4, []) == consensus._index_py([], 4, [])


def test_an_id_out_of_range_is_refused_and_nothing_is_written() -> None:
    counts = array("q", [0, 0, 0])
    for bad in (array("i", [0, 3]), array("i", [-1]), array("i", [1, 2, 2**31 - 1])):
        assert not native_loops.count_ids(bad, counts)
        assert counts == array("q", [0, 0, 0])
        maxes = array("q", [5, 5, 5])
        assert not native_loops.raise_max(bad, array("q", [9] * len(bad)), maxes)
        assert maxes == array("q", [5, 5, 5])


def test_scatter_refuses_a_cursor_past_the_end() -> None:
    ids, times = array("i", [0, 1]), array("q", [7, 8])
    positions, out = array("i", [0, 0]), array("q", [0, 0])
    assert not native_loops.scatter(ids, times, None, array("q", [0, 2]), positions, out, None)
    assert not native_loops.scatter(ids, times, None, array("q", [0, -1]), positions, out, None)
    assert native_loops.scatter(ids, times, None, array("q", [1, 0]), positions, out, None)
    assert (positions, out) == (array("i", [1, 0]), array("q", [8, 7]))


def test_arrays_of_another_type_or_length_are_left_to_python() -> None:
    counts = array("q", [0, 0])
    assert not native_loops.count_ids(array("l", [0]), counts)
    assert not native_loops.count_ids(array("i", [0]), array("i", [0, 0]))
    assert not native_loops.raise_max(array("i", [0, 1]), array("q", [1]), counts)
    assert not native_loops.scatter(array("i", [0]), array("q", []), None, counts, array("i", [0]), array("q", [0]),
                                    None)


def test_a_bad_id_gives_the_plain_pythons_answer() -> None:
    bad = [ListColumns(array("i", [0, 5]), array("q", [1, 1]), array("q", [1, 1]))]
    with pytest.raises(IndexError):
        consensus._index_py(bad, 3, [])
    with pytest.raises(IndexError):
        consensus._index(bad, 3, [])
