"""Many starts, one list: how stable each file is across runs, and the list they agree on.

A run is one recorded start (a saved list in first-access order). :class:`Tally` takes runs one
at a time and keeps each path once (a PathTable) and each run as three arrays (path ids, sizes,
first-access times), so a run's entries can be dropped as soon as they are counted (a 3M-entry
run in well under 512 MiB; see bench/consensus_huge.py). :meth:`Tally.stability` then gives,
per file, the share of runs that read it, the median and spread of its position and of its
first-access time, and whether any run saw it created at runtime. The consensus keeps the
files read in at least ``min_share`` of the runs, ordered by median position (ties by median
time, then path).

Spread is the range (largest minus smallest value) over the runs that read the file: the
simplest figure that shows an operator "this file wanders".
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

from nydus_top.lists.paths import ListColumns, PathTable, columns_of
from nydus_top.model.records import Listable
from nydus_top.runs import native_loops
from nydus_top.runs.groups import Grouping, Groups, group

DEFAULT_MIN_SHARE = 0.5
_NONE = -1  # an elapsed time or size the run did not give
_EXACT = 1 << 53  # integers below this are exact as floats (a median time is a float)


class FileStability(NamedTuple):
    """One file across the runs of a tally (a NamedTuple: 100k of them are built at once)."""

    path: str
    seen: int  # runs that read it
    runs: int  # runs in the tally
    position: float  # median 0-based position over the runs that read it
    position_spread: int  # largest minus smallest position
    elapsed_us: float | None  # median first-access time, None when no run gave one
    elapsed_spread_us: int | None
    size: int | None  # the largest size any run gave
    runtime_created: bool  # created at runtime in at least one run

    @property
    def share(self) -> float:
        return self.seen / self.runs if self.runs else 0.0

    @property
    def elapsed(self) -> int | None:
        """The median time rounded to whole microseconds (what a saved list holds)."""
        return None if self.elapsed_us is None else round(self.elapsed_us)


@dataclass(frozen=True, slots=True)
class _Index:
    """Every run's figures grouped by file (:class:`Groups`: each file's positions, times and
    sizes, each sorted on its own) and the files some run saw created at runtime. Built once,
    after the last add."""

    groups: Groups
    runtime: frozenset[int]


class Tally:
    """Runs counted so far. Add runs with :meth:`add` (or :meth:`add_columns`); read results at any time.

    Paths are kept once, compactly, in :attr:`paths` (a PathTable, which a caller may share with
    an evaluation Table); each run is three arrays (path ids in first-access order, sizes, times):
    about 100 bytes a file for one run of 60-byte paths (issue 18 item 7)."""

    def __init__(self, paths: PathTable | None = None, grouping: Grouping = group) -> None:
        self.paths = paths if paths is not None else PathTable()
        self.grouping = grouping  # groups the runs by file (a SharedGroups: once for a Table of the same columns)
        self.names: list[str] = []  # one per run, in the order added
        self._runs: list[ListColumns] = []
        self._runtime: list[tuple[int, int]] = []  # (run, file id) for each runtime-created path a run named
        self._index: _Index | None = None
        self._one: _OneRun | None = None

    @property
    def runs(self) -> int:
        return len(self.names)

    @property
    def distinct(self) -> int:
        """Distinct files over all runs."""
        if len(self._runs) == 1:
            return len(self._runs[0])
        starts = self.index().groups.starts
        return sum(1 for a, b in pairwise(starts) if b > a)

    def add(self, entries: Iterable[Listable], *, name: str = "", runtime: Iterable[str] = ()) -> None:
        """Count one run: *entries* in first-access order (a path's later repeats are ignored),
        *runtime* the paths that run saw created at runtime."""
        self.add_columns(columns_of(entries, self.paths), name=name, runtime=runtime)

    def add_columns(self, columns: ListColumns, *, name: str = "", runtime: Iterable[str] = ()) -> None:
        """Count one run held as columns of :attr:`paths` ids (each id once, in first-access order);
        the arrays are kept as they are, not copied."""
        run = len(self._runs)
        self._runs.append(columns)
        find = self.paths.find
        self._runtime.extend((run, fid) for fid in map(find, runtime) if fid >= 0)
        self.names.append(name or f"run {len(self.names) + 1}")
        self._index = self._one = None

    def index(self) -> _Index:
        """The runs grouped by file (built once after the last add)."""
        if self._index is None:
            self._index = _Index(self.grouping(self._runs, len(self.paths)), _flagged(self._runs, self._runtime))
        return self._index

    def one_run(self) -> _OneRun | None:
        """With one run only, where each file is in it: all a tally of one run needs (no index)."""
        if len(self._runs) != 1:
            return None
        if self._one is None:
            self._one = _OneRun(self._runs[0], len(self.paths), self._runtime)
        return self._one

    def summary(self, fid: int) -> FileStability:
        """File *fid* over the runs."""
        one = self.one_run()
        if one is not None:
            at = one.at[fid]
            if at < 0:
                raise IndexError(f"file {fid} is not in the run")
            run = one.run
            return _summary(self.paths[fid], (at,), (run.times[at],), max(run.sizes[at], _NONE),
                            fid in one.runtime, 1)
        index = self.index()
        groups = index.groups
        a, b = groups.starts[fid], groups.starts[fid + 1]
        return _summary_sorted(self.paths[fid], groups.positions[a:b], groups.times[a:b], _largest(groups, a, b),
                               fid in index.runtime, self.runs)

    def entry(self, fid: int) -> ConsensusEntry:
        """File *fid* as a list entry (what :func:`as_entries` makes of its summary), quicker."""
        one = self.one_run()
        if one is not None:
            at = one.at[fid]
            return _entry(self.paths[fid], one.run.sizes[at], one.run.times[at])
        groups = self.index().groups
        at = groups.starts[fid]
        if groups.starts[fid + 1] - at != 1:
            f = self.summary(fid)
            return ConsensusEntry(f.path, f.size, f.elapsed)
        return _entry(self.paths[fid], groups.sizes[at], groups.times[at])

    def order(self, *, min_seen: int = 1) -> array[int]:
        """The ids of every file seen in at least *min_seen* runs, in consensus order."""
        if self.one_run() is not None:  # one run: its own order (each position is its file's median)
            return self._runs[0].ids if min_seen <= 1 else array("i")
        return _consensus_order(self, max(min_seen, 1))

    def stability(self, *, min_seen: int = 1) -> list[FileStability]:
        """Every file seen in at least *min_seen* runs, in consensus order."""
        return [self.summary(fid) for fid in self.order(min_seen=min_seen)]

    def consensus(self, min_share: float = DEFAULT_MIN_SHARE) -> list[FileStability]:
        """The files read in at least *min_share* of the runs, in consensus order."""
        return [self.summary(fid) for fid in self.consensus_order(min_share)]

    def consensus_order(self, min_share: float = DEFAULT_MIN_SHARE) -> array[int]:
        """The ids of the files read in at least *min_share* of the runs, in consensus order."""
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min share must be in (0, 1], got {min_share}")
        # Compare counts, not floats: 5 of 10 runs is exactly 0.5.
        return self.order(min_seen=_needed(min_share, self.runs))


def _entry(path: str, size: int, time: int) -> ConsensusEntry:
    """A file one run read as a list entry: its size, its time (as a median's rounding gives it)."""
    return ConsensusEntry(path, None if size <= _NONE else size,
                          None if time == _NONE else time if time < _EXACT else round(float(time)))


class _OneRun:
    """A tally of one run: each file's position in it (-1: not in it), 4 bytes a file."""

    __slots__ = ("run", "at", "runtime")

    def __init__(self, run: ListColumns, files: int, runtime: Sequence[tuple[int, int]]) -> None:
        self.run = run
        self.at = array("i", [-1]) * files
        for position, fid in enumerate(run.ids):
            self.at[fid] = position
        self.runtime = frozenset(fid for _, fid in runtime if self.at[fid] >= 0)


def _largest(groups: Groups, a: int, b: int) -> int:
    """The largest size of the group ``[a:b]`` of *groups* (sorted), _NONE when none is larger."""
    return max(groups.sizes[b - 1], _NONE) if b > a else _NONE


def _flagged(runs: Sequence[ListColumns], runtime: Sequence[tuple[int, int]]) -> frozenset[int]:
    """The files *runtime* ((run, file id) pairs) flags: a run's runtime-created path flags its
    file when that run or an earlier one read it. The runs are looked through in order only
    while a file named by that run or a later one is not found yet."""
    last: dict[int, int] = {}  # each file named: the last run that named it
    for k, fid in runtime:
        last[fid] = max(k, last.get(fid, k))
    flagged: set[int] = set()
    for k, run in enumerate(runs):
        waiting = {fid for fid, named in last.items() if named >= k and fid not in flagged}
        if not waiting:
            break
        flagged.update(waiting.intersection(run.ids))
    return frozenset(flagged)


def _consensus_order(tally: Tally, min_seen: int) -> array[int]:
    """Ids of files seen at least *min_seen* times, ordered by (median position, median time, path):
    a counting sort on twice the median position (a whole number; both in C, native/tally.c),
    then each group of equal positions (small) sorted by time and path."""
    groups = tally.index().groups
    keys = native_loops.median_keys(groups.starts, groups.positions, min_seen)
    out = native_loops.order_by_key(keys) if keys is not None else None
    if keys is None or out is None:
        return _consensus_order_py(tally, min_seen)
    _break_ties(tally, out, keys)
    return out


def _consensus_order_py(tally: Tally, min_seen: int) -> array[int]:
    """:func:`_consensus_order` in plain Python (the reference the C path is tested against)."""
    groups = tally.index().groups
    starts, positions = groups.starts, groups.positions
    files = len(starts) - 1
    keys = array("i", [-1]) * files  # twice the median position; -1: left out
    for fid in range(files):
        a, b = starts[fid], starts[fid + 1]
        seen = b - a
        if seen >= min_seen:
            keys[fid] = 2 * positions[a] if seen == 1 else round(2 * _median(positions[a:b]))
    firsts = array("i", bytes(4 * (max(keys, default=-1) + 2)))  # key k's files: from firsts[k] on
    for key in keys:
        firsts[key + 1] += 1
    total = firsts[0] = 0
    for k in range(1, len(firsts)):
        total += firsts[k]
        firsts[k] = total
    out = array("i", bytes(4 * total))
    for fid, key in enumerate(keys):
        if key >= 0:
            at = firsts[key]
            firsts[key] = at + 1
            out[at] = fid
    del firsts
    _break_ties(tally, out, keys)
    return out


def _break_ties(tally: Tally, order: array[int], keys: array[int]) -> None:
    """Sort each run of equal median positions in *order* by median time, then path (in place)."""
    n = len(order)
    i = 0
    while i < n:
        j = i + 1
        key = keys[order[i]]
        while j < n and keys[order[j]] == key:
            j += 1
        if j - i > 1:
            group = sorted(order[i:j], key=lambda fid: _order(tally.summary(fid)))
            order[i:j] = array(order.typecode, group)
        i = j


def _needed(min_share: float, runs: int) -> int:
    """The fewest runs that make a share of at least *min_share* (at least one)."""
    needed = max(1, int(min_share * runs))
    while needed < runs and needed / runs < min_share - 1e-12:
        needed += 1
    return needed


def _order(f: FileStability) -> tuple[float, float, str]:
    return (f.position, f.elapsed_us if f.elapsed_us is not None else float("inf"), f.path)


def _median(values: Sequence[int], ordered_already: bool = False) -> float:
    if len(values) == 1:
        return float(values[0])
    ordered = values if ordered_already else sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _summary_sorted(path: str, positions: Sequence[int], elapsed: Sequence[int], size: int, runtime: bool,
                    runs: int) -> FileStability:
    """File *path*'s figures from its sorted *positions* and *elapsed* (an index's groups): nothing
    sorted again, the unknown times (a block of _NONE among the sorted times) cut out."""
    known = None if size == _NONE else size
    if len(positions) == 1:  # most files of a noisy tally: nothing to cut
        time = None if elapsed[0] == _NONE else float(elapsed[0])
        return FileStability(path, 1, runs, float(positions[0]), 0, time, None if time is None else 0, known,
                             runtime)
    lo, hi = bisect_left(elapsed, _NONE), bisect_right(elapsed, _NONE)
    times = elapsed if lo == hi else [*elapsed[:lo], *elapsed[hi:]]
    return FileStability(path, len(positions), runs, _median(positions, True), positions[-1] - positions[0],
                         _median(times, True) if times else None, (times[-1] - times[0]) if times else None,
                         known, runtime)


def _summary(path: str, positions: Sequence[int], elapsed: Sequence[int], size: int, runtime: bool,
             runs: int) -> FileStability:
    """:func:`_summary_sorted` of values in any order."""
    if len(positions) > 1:
        positions, elapsed = sorted(positions), sorted(elapsed)
    return _summary_sorted(path, positions, elapsed, size, runtime, runs)


@dataclass(frozen=True, slots=True)
class ConsensusEntry:
    """A consensus file as a list entry (Listable): median time, largest size."""

    path: str
    size: int | None
    elapsed_us: int | None


def as_entries(files: Iterable[FileStability]) -> list[ConsensusEntry]:
    """*files* as entries a list can be saved from."""
    return [ConsensusEntry(f.path, f.size, f.elapsed) for f in files]


class ConsensusEntries:
    """The files of *order* (ids of *tally*, e.g. :meth:`Tally.consensus_order`) as entries, made
    one at a time each time they are read: a huge consensus is saved without a list of it."""

    __slots__ = ("_tally", "_order")

    def __init__(self, tally: Tally, order: Sequence[int]) -> None:
        self._tally, self._order = tally, order

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[ConsensusEntry]:
        return map(self._tally.entry, self._order)

    def __contains__(self, item: object) -> bool:
        return any(item == entry for entry in self)


def tally(runs: Iterable[Iterable[Listable]]) -> Tally:
    """A tally of *runs* (for callers that already hold them all)."""
    result = Tally()
    for run in runs:
        result.add(run)
    return result
