"""The runs grouped by file (nydus_top.runs.groups) against a plain count, what the tally and the
evaluation make of the groups, and one grouping shared by a tally and a table of the same runs."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.paths import ListColumns, PathTable, columns_of
from nydus_top.model.records import ListedFile
from nydus_top.runs import consensus, groups, native_loops
from nydus_top.runs import evaluate as ev

_NONE = -1
HOSTILE = [_NONE, 0, 0, 1, 7, -5, (1 << 60) + 1, (1 << 63) - 1, -(1 << 63)]


def hostile_runs(rng: random.Random, runs: int, files: int) -> list[ListColumns]:
    """Runs over ids below *files*: some empty, some naming an id twice, any 64-bit values; the
    first and the last id in every run but the first, so that a run's and the last group's
    boundaries are walked."""
    out = []
    for r in range(runs):
        chosen = rng.sample(range(files), rng.randrange(files + 1)) if files else []
        if r and files:
            chosen = [0, *(f for f in chosen if f not in (0, files - 1)), files - 1]
        if chosen and rng.random() < 0.3:
            chosen.insert(rng.randrange(len(chosen) + 1), rng.choice(chosen))
        out.append(ListColumns(array("i", chosen), array("q", (rng.choice(HOSTILE) for _ in chosen)),
                               array("q", (rng.choice([*HOSTILE, rng.randrange(1 << 40)]) for _ in chosen))))
    return out


def _held(value: int) -> int:
    """*value* as a table holds it: below 0 unknown, beyond 2**60 at 2**60."""
    return _NONE if value < 0 else min(value, 1 << 60)


def plain_groups(runs: list[ListColumns], files: int) -> groups.Groups:
    """The groups counted plainly: each file's (position, time, size) of every run, then sorted."""
    values: list[tuple[list[int], list[int], list[int]]] = [([], [], []) for _ in range(files)]
    for run in runs:
        for position, (fid, time, size) in enumerate(zip(run.ids, run.times, run.sizes, strict=True)):
            values[fid][0].append(position)
            values[fid][1].append(time)
            values[fid][2].append(size)
    starts = [0]
    for positions, _, _ in values:
        starts.append(starts[-1] + len(positions))
    return groups.Groups(array("q", starts), *(array(code, [v for file in values for v in sorted(file[k])])
                                               for k, code in enumerate("iqq")))


CASES = [(0, 3), (1, 0), (1, 1), (1, 6), (2, 1), (2, 5), (3, 2), (5, 40), (17, 9)]


@pytest.mark.parametrize(("runs", "files"), CASES)
@pytest.mark.parametrize("native", [True, False])
def test_groups_are_the_runs_counted_plainly(runs: int, files: int, native: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if not native:
        monkeypatch.setattr(native_loops, "lib", None)
    rng = random.Random(runs * 100 + files)
    for trial in range(6):
        columns = hostile_runs(rng, runs, files)
        assert groups.group(columns, files) == plain_groups(columns, files), (runs, files, trial)


@pytest.mark.parametrize(("runs", "files"), CASES)
def test_the_evaluation_index_is_each_files_values_plainly(runs: int, files: int) -> None:
    """Per file two or more runs read: sorted positions, known times (sorted), known sizes
    (largest first), held as a table holds them (below 0: unknown; beyond 2**60: 2**60); per file
    one run read: (position, time, size); nothing for the others."""
    rng = random.Random(runs * 10 + files)
    for _ in range(6):
        columns = hostile_runs(rng, runs, files)
        held: dict[int, list[tuple[int, int, int]]] = {}
        for run in columns:
            for position, (fid, time, size) in enumerate(zip(run.ids, run.times, run.sizes, strict=True)):
                held.setdefault(fid, []).append((position, _held(time), _held(size)))
        index, single = ev._index(groups.group(columns, files))
        assert single == {fid: rows[0] for fid, rows in held.items() if len(rows) == 1}
        for fid in range(files):
            rows = held.get(fid, [])
            if len(rows) < 2:
                assert index[fid] is None
                continue
            f = index[fid]
            assert f is not None
            assert list(f.positions) == sorted(p for p, _, _ in rows)
            assert list(f.times) == sorted(t for _, t, _ in rows if t != _NONE)
            assert list(f.sizes) == sorted((z for _, _, z in rows if z != _NONE), reverse=True)


def test_a_runtime_path_flags_its_file_when_that_run_or_an_earlier_one_read_it() -> None:
    paths = PathTable()
    for path in ("/later", "/never"):  # known before any run read them (a shared table)
        paths.id_of(path)
    t = consensus.Tally(paths)
    t.add([ListedFile("/a", 1, 1)], runtime=["/later", "/never"])  # /later is read by the next run only
    t.add([ListedFile("/b", 1, 1), ListedFile("/later", 1, 1)], runtime=["/b"])  # its own file
    t.add([ListedFile("/c", 1, 1), ListedFile("/a", 1, 1)], runtime=["/a"])  # read two runs before
    t.add([ListedFile("/d", 1, 1)], runtime=["/c", "/d"])
    assert {f.path: f.runtime_created for f in t.stability()} == {
        "/a": True, "/b": True, "/later": False, "/c": True, "/d": True}


def test_runtime_flags_are_those_of_a_plain_look_through_the_runs() -> None:
    """Random runs and (run, file) pairs: a file is flagged when the naming run or an earlier one read it."""
    rng = random.Random(5)
    for _ in range(200):
        files = rng.randrange(1, 12)
        columns = hostile_runs(rng, rng.randrange(1, 6), files)
        runtime = [(rng.randrange(len(columns)), rng.randrange(files)) for _ in range(rng.randrange(6))]
        want = {fid for k, fid in runtime if any(fid in run.ids for run in columns[:k + 1])}
        assert consensus._flagged(columns, runtime) == want, (columns, runtime)


def test_a_tally_sizes_are_each_files_largest_and_unknown_below_zero() -> None:
    t = consensus.Tally()
    t.add([ListedFile("/a", -5, 1), ListedFile("/b", None, 1), ListedFile("/c", 3, 1), ListedFile("/z", 4, 1)])
    t.add([ListedFile("/a", -7, 2), ListedFile("/b", 9, 2), ListedFile("/c", 2, 2), ListedFile("/z", 2**63 - 1, 1)])
    t.add([ListedFile("/d", 5, 3), ListedFile("/z", 0, 1)])
    assert {f.path: f.size for f in t.stability()} == {"/a": None, "/b": 9, "/c": 3, "/d": 5, "/z": 2**63 - 1}
    assert {e.path: e.size for e in consensus.ConsensusEntries(t, t.order())} == {
        "/a": None, "/b": 9, "/c": 3, "/d": 5, "/z": 2**63 - 1}


def counting_group(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each grouping made from now on: how many runs it grouped."""
    made: list[int] = []
    real = groups.group

    def counted(runs: list[ListColumns], files: int) -> groups.Groups:
        made.append(len(runs))
        return real(runs, files)

    monkeypatch.setattr(groups, "group", counted)
    return made


def test_shared_groups_are_made_again_only_for_other_runs_or_files(monkeypatch: pytest.MonkeyPatch) -> None:
    made = counting_group(monkeypatch)
    shared = groups.SharedGroups()
    a = ListColumns(array("i", [0, 1]), array("q", [1, 2]), array("q", [3, 4]))
    b = ListColumns(array("i", [1]), array("q", [5]), array("q", [6]))
    first = shared([a, b], 2)
    assert shared([a, b], 2) is first and made == [2]
    assert shared([a, b], 3) is not first and made == [2, 2]  # more files
    assert shared([a], 3).starts == array("q", [0, 1, 2, 2]) and made == [2, 2, 1]  # fewer runs
    copy = ListColumns(array("i", a.ids), a.sizes, a.times)  # equal, not the same columns
    assert shared([copy], 3) == shared([a], 3) and made == [2, 2, 1, 1, 1]


def hostile_entries(rng: random.Random) -> list[list[ListedFile]]:
    names = [f"/h/{i}" for i in range(12)]
    return [[ListedFile(p, rng.choice([*HOSTILE, None, 1 << 70]), rng.choice([*HOSTILE, None, 1 << 66]))
             for p in rng.sample(names, rng.randrange(1, len(names)))] for _ in range(rng.randrange(2, 7))]


def test_a_tally_entries_are_its_summaries_as_entries() -> None:
    """Tally.entry reads a file one run read straight from its group (its size and time), the
    others through their summary: the same entries either way."""
    rng = random.Random(3)
    for _ in range(30):
        t = consensus.tally(hostile_entries(rng))
        assert list(consensus.ConsensusEntries(t, t.order())) == consensus.as_entries(t.stability())


@pytest.mark.parametrize("table_first", [True, False])
def test_a_tally_and_a_table_sharing_their_groups_are_those_of_their_own(table_first: bool) -> None:
    """The table holds times and sizes beyond 2**60 at 2**60 and below 0 as unknown; the tally
    keeps them: whichever groups first, each reads what it would have grouped alone."""
    rng = random.Random(11)
    for _ in range(20):
        runs = hostile_entries(rng)
        table = ev.Table(grouping=groups.SharedGroups())
        tally = consensus.Tally(table.paths, table.grouping)
        alone_tally, alone_table = consensus.Tally(), ev.Table()
        for n, run in enumerate(runs):
            columns = columns_of(run, table.paths)
            tally.add_columns(columns, name=f"r{n}", runtime=[run[0].path])
            table.add_columns(f"r{n}", columns)
            alone_tally.add(run, name=f"r{n}", runtime=[run[0].path])
            alone_table.add(f"r{n}", run)
        if table_first:
            assert ev.leave_one_out(table, ev.Link()) == ev.leave_one_out(alone_table, ev.Link())
        assert tally.stability() == alone_tally.stability()
        assert list(consensus.ConsensusEntries(tally, tally.order())) == list(
            consensus.ConsensusEntries(alone_tally, alone_tally.order()))
        assert ev.leave_one_out(table, ev.Link()) == ev.leave_one_out(alone_table, ev.Link())
        assert ev.sweep(table, ev.Link()) == ev.sweep(alone_table, ev.Link())
        assert tally.index().groups is table.grouping([run.columns for run in table.runs], len(table.paths))


def test_consensus_with_its_leave_one_out_summary_groups_the_runs_once(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{tmp_path / "persist"}"\n')
    runs = []
    for n in range(4):
        runs.append(str(tmp_path / f"run{n}"))
        save_list([ListedFile(p, 10, 5 * i) for i, p in enumerate(["/a", "/b", f"/r{n}"])], runs[-1],
                  meta=ListMeta(runtime=("/b",)))
    made = counting_group(monkeypatch)
    for extra in ([], ["--min-share", "auto"], ["-o", str(tmp_path / "out")]):
        made.clear()
        assert main(["--config", str(config), "consensus", *runs, *extra]) == 0
        assert made == [4], extra
