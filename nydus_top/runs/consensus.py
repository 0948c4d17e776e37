"""Many starts, one list: how stable each file is across runs, and the list they agree on.

A run is one recorded start (a saved list in first-access order). :class:`Tally` takes runs one
at a time and keeps, per distinct path, compact arrays of its positions and first-access times,
so a run's entries can be dropped as soon as they are counted (100 runs of 10k files stay well
under 200 MB). :meth:`Tally.stability` then gives, per file, the share of runs that read it, the
median and spread of its position and of its first-access time, and whether any run saw it
created at runtime. The consensus keeps the files read in at least ``min_share`` of the runs,
ordered by median position (ties by median time, then path).

Spread is the range (largest minus smallest value) over the runs that read the file: the
simplest figure that shows an operator "this file wanders".
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from nydus_top.model.records import Listable

DEFAULT_MIN_SHARE = 0.5
_NONE = -1  # an elapsed time or size the run did not give


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


class _File:
    """One path's figures over the runs: compact arrays, no object per run."""

    __slots__ = ("positions", "elapsed", "size", "runtime", "last")

    def __init__(self) -> None:
        self.positions = array("l")
        self.elapsed = array("q")
        self.size = _NONE
        self.runtime = False
        self.last = -1  # the last run that counted this path (a run counts a path once)


class Tally:
    """Runs counted so far. Add runs with :meth:`add`; read results at any time."""

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self.names: list[str] = []  # one per run, in the order added

    @property
    def runs(self) -> int:
        return len(self.names)

    @property
    def distinct(self) -> int:
        """Distinct files over all runs."""
        return len(self._files)

    def add(self, entries: Iterable[Listable], *, name: str = "", runtime: Iterable[str] = ()) -> None:
        """Count one run: *entries* in first-access order (a path's later repeats are ignored),
        *runtime* the paths that run saw created at runtime."""
        files = self._files
        run = len(self.names)
        position = 0
        for entry in entries:
            path = entry.path
            stats = files.get(path)
            if stats is None:
                stats = files[path] = _File()
            elif stats.last == run:
                continue
            stats.last = run
            stats.positions.append(position)
            elapsed = entry.elapsed_us
            stats.elapsed.append(_NONE if elapsed is None else elapsed)
            size = entry.size
            if size is not None and size > stats.size:
                stats.size = size
            position += 1
        for path in runtime:
            if path in files:
                files[path].runtime = True
        self.names.append(name or f"run {len(self.names) + 1}")

    def stability(self, *, min_seen: int = 1) -> list[FileStability]:
        """Every file seen in at least *min_seen* runs, in consensus order."""
        runs = self.runs
        result = [_summary(path, stats, runs) for path, stats in self._files.items()
                  if len(stats.positions) >= min_seen]
        result.sort(key=_order)
        return result

    def consensus(self, min_share: float = DEFAULT_MIN_SHARE) -> list[FileStability]:
        """The files read in at least *min_share* of the runs, in consensus order."""
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min share must be in (0, 1], got {min_share}")
        runs = self.runs
        # Compare counts, not floats: 5 of 10 runs is exactly 0.5.
        return self.stability(min_seen=_needed(min_share, runs))


def _needed(min_share: float, runs: int) -> int:
    """The fewest runs that make a share of at least *min_share* (at least one)."""
    needed = max(1, int(min_share * runs))
    while needed < runs and needed / runs < min_share - 1e-12:
        needed += 1
    return needed


def _order(f: FileStability) -> tuple[float, float, str]:
    return (f.position, f.elapsed_us if f.elapsed_us is not None else float("inf"), f.path)


def _median(values: Sequence[int]) -> float:
    if len(values) == 1:
        return float(values[0])
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _summary(path: str, stats: _File, runs: int) -> FileStability:
    positions, elapsed = stats.positions, stats.elapsed
    size = None if stats.size == _NONE else stats.size
    if len(positions) == 1:  # most files of a noisy tally: nothing to sort
        time = None if elapsed[0] == _NONE else float(elapsed[0])
        return FileStability(path, 1, runs, float(positions[0]), 0, time, None if time is None else 0, size,
                             stats.runtime)
    times = elapsed if _NONE not in elapsed else [t for t in elapsed if t != _NONE]
    return FileStability(path, len(positions), runs, _median(positions), max(positions) - min(positions),
                         _median(times) if times else None, (max(times) - min(times)) if times else None,
                         size, stats.runtime)


@dataclass(frozen=True, slots=True)
class ConsensusEntry:
    """A consensus file as a list entry (Listable): median time, largest size."""

    path: str
    size: int | None
    elapsed_us: int | None


def as_entries(files: Iterable[FileStability]) -> list[ConsensusEntry]:
    """*files* as entries a list can be saved from."""
    return [ConsensusEntry(f.path, f.size, f.elapsed) for f in files]


def tally(runs: Iterable[Iterable[Listable]]) -> Tally:
    """A tally of *runs* (for callers that already hold them all)."""
    result = Tally()
    for run in runs:
        result.add(run)
    return result
