"""The runs' entries grouped by file: the one counting sort the consensus tally and the
leave-one-out evaluation both read.

A run is columns of PathTable ids (:class:`ListColumns`: ids in first-access order, sizes,
first-access times). :func:`group` puts every run's entries together by file id in two passes
(count, then scatter) with no object per entry, then sorts each file's values. The passes run in
C (native/tally.c); :func:`_group_py` is the same in plain Python, taken whenever the C path
declines (it checks every id and index) and the reference the C path is tested against.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from operator import is_

from nydus_top.lists.paths import ListColumns
from nydus_top.runs import native_loops


@dataclass(frozen=True, slots=True)
class Groups:
    """File *f*'s positions (0-based, in the run that read it), times and sizes over the runs are
    ``positions[starts[f]:starts[f + 1]]`` and the same slices of ``times`` and ``sizes``; each
    group is sorted on its own (a file's n-th position, n-th time and n-th size need not be one
    run's). Values are the runs' own, unknown ones included (-1)."""

    starts: array[int]  # one more than the files: the last is every entry
    positions: array[int]
    times: array[int]
    sizes: array[int]


Grouping = Callable[[Sequence[ListColumns], int], Groups]  # group, or a SharedGroups


def group(runs: Sequence[ListColumns], files: int) -> Groups:
    """*runs* grouped by file (ids below *files*)."""
    counts = array("q", bytes(8 * files))
    if not all(native_loops.count_ids(run.ids, counts) for run in runs):
        return _group_py(runs, files)
    starts, cursor, positions, times, sizes = _slots(counts)
    for run in runs:
        if not native_loops.scatter(run.ids, run.times, run.sizes, cursor, positions, times, sizes):
            return _group_py(runs, files)
    if not all(native_loops.sort_groups(starts, values) for values in (positions, times, sizes)):
        return _group_py(runs, files)
    return Groups(starts, positions, times, sizes)


def _group_py(runs: Sequence[ListColumns], files: int) -> Groups:
    """:func:`group` in plain Python (the reference the C path is tested against)."""
    counts = [0] * files  # a list: its items are read and set faster than an array's (small ints, shared)
    for run in runs:
        for fid in run.ids:
            counts[fid] += 1
    starts, cursor, positions, times, sizes = _slots(counts)
    for run in runs:  # cursor[f]: where f's next value goes
        for position, (fid, time, size) in enumerate(zip(run.ids, run.times, run.sizes, strict=True)):
            at = cursor[fid]
            cursor[fid] = at + 1
            positions[at] = position
            times[at] = time
            sizes[at] = size
    for a, b in pairwise(starts):
        if b - a > 1:
            for values in (positions, times, sizes):
                values[a:b] = array(values.typecode, sorted(values[a:b]))
    return Groups(starts, positions, times, sizes)


def _slots(counts: Sequence[int]) -> tuple[array[int], array[int], array[int], array[int], array[int]]:
    """From each file's count: where each file's values start (then the total), a copy of that to
    move along as they are put, and the empty positions, times and sizes."""
    starts = array("q", accumulate(counts, initial=0))
    total = starts[-1]
    positions, times, sizes = array("i", bytes(4 * total)), array("q", bytes(8 * total)), array("q", bytes(8 * total))
    return starts, array("q", starts), positions, times, sizes


class SharedGroups:
    """:func:`group` that keeps its last result and gives it again for the same runs (the same
    column objects, in the same order) and files: a Tally and an evaluation Table given the same
    columns (``nydus-top consensus`` and its leave-one-out summary) group them once."""

    __slots__ = ("_runs", "_files", "_groups")

    def __init__(self) -> None:
        self._runs: tuple[ListColumns, ...] = ()
        self._files = -1
        self._groups: Groups | None = None

    def __call__(self, runs: Sequence[ListColumns], files: int) -> Groups:
        if self._groups is None or files != self._files or not _same(runs, self._runs):
            self._groups, self._runs, self._files = group(runs, files), tuple(runs), files
        return self._groups


def _same(runs: Sequence[ListColumns], kept: Sequence[ListColumns]) -> bool:
    return len(runs) == len(kept) and all(map(is_, runs, kept))
