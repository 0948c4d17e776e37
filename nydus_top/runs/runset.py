"""A set of runs of one image counted together: what the stability view shows and saves.

:class:`RunSet` holds, per file, its :class:`nydus_top.runs.consensus.FileStability` over the runs,
and the identity a consensus saved from it carries (``runs`` = the run names). Which files are
*unstable* is decided here, once: read by fewer than all runs, or wandering by more than
``UNSTABLE_SPREAD`` positions between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nydus_top.lists.files import ListFileError, LoadedList, load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Listable
from nydus_top.runs import store as runstore
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, FileStability, Tally
from nydus_top.runs.evaluate import Table

UNSTABLE_SPREAD = 10  # a file whose position varies by more than this between runs is unstable


@dataclass(frozen=True, slots=True)
class Run:
    """One recorded start as counted: its name, entries in first-access order, the paths it saw
    created at runtime, whether it may miss files, and its byte ranges when it has any."""

    name: str
    entries: Sequence[Listable]
    runtime: frozenset[str] = frozenset()
    complete: bool = True
    ranges: Any = None  # a nydus_top.lists.ranges.RangeBook once lists carry ranges (LoadedList.ranges)
    image: str = ""  # the image as its metadata names it (registry host included), when known


@dataclass(slots=True)
class RunSet:
    image: str
    names: tuple[str, ...]
    files: list[FileStability]  # every file of any run, in consensus order
    complete: bool  # every run was complete
    ranges: Any = None  # the union of the runs' ranges, or None (see union_ranges)
    by_path: dict[str, FileStability] = field(default_factory=dict)
    table: Table | None = None  # the runs compactly, for the evaluation (leave-one-out, waterfalls)

    def __post_init__(self) -> None:
        self.by_path = {f.path: f for f in self.files}

    @property
    def runs(self) -> int:
        return len(self.names)

    def meta(self) -> ListMeta:
        """The identity of a list saved from this set: the image, and the runs it was made from."""
        return ListMeta(image=self.image, runs=self.names, complete=self.complete).with_origin()

    def runtime_created(self) -> set[str]:
        return {f.path for f in self.files if f.runtime_created}


def is_unstable(f: FileStability) -> bool:
    """Read by fewer than all runs, or its position wanders by more than UNSTABLE_SPREAD."""
    return f.seen < f.runs or f.position_spread > UNSTABLE_SPREAD


def below(f: FileStability, min_share: float = DEFAULT_MIN_SHARE) -> bool:
    """Read in fewer than *min_share* of the runs (compared in counts: 5 of 10 is 0.5)."""
    return f.seen < f.runs * min_share - 1e-9


def union_ranges(runs: Iterable[Run]) -> Any:
    """The union of the runs' byte ranges for the consensus's range list, or None when no run has
    any. HOOK for byte ranges: a run's ``ranges`` is its list's ``LoadedList.ranges`` (a
    ``RangeBook``); books are united with ``RangeBook.merge``. Until lists carry ranges this is None.
    """
    books = [run.ranges for run in runs if run.ranges is not None]
    if not books:
        return None
    union = type(books[0])()
    for book in books:
        union.merge(book)
    return union


def count(image: str, runs: Sequence[Run]) -> RunSet:
    """The set of *runs* of *image*, every file summarised. The set's image is the one the runs'
    metadata agree on (registry host included), else *image*."""
    tally = Tally()
    runs = [run for run in runs if run.entries]  # an empty run never counts
    table = Table()
    for run in runs:
        tally.add(run.entries, name=run.name, runtime=run.runtime)
        table.add(run.name, run.entries, run.ranges)
    named = {run.image for run in runs if run.image}
    return RunSet(named.pop() if len(named) == 1 else image, tuple(tally.names), tally.stability(),
                  all(run.complete for run in runs), union_ranges(runs), table=table)


def as_run(name: str, loaded: LoadedList) -> Run:
    """A saved list (a run of the run store, or any list) as a run."""
    meta = loaded.meta
    if meta is None:
        return Run(name, loaded.entries, ranges=getattr(loaded, "ranges", None))
    return Run(name, loaded.entries, frozenset(meta.runtime), meta.complete, getattr(loaded, "ranges", None),
               meta.image)


def read_runs(persist_dir: str | os.PathLike[str], image: str) -> tuple[list[Run], list[str]]:
    """Every run of *image* kept under *persist_dir* (oldest first; its full reference, registry
    host included, names them) and the warnings of reading them: a run that cannot be read is
    one warning, the others are read. Raises ImageRefError for an invalid reference."""
    runs: list[Run] = []
    warnings: list[str] = []
    for path in runstore.runs_of(runstore.image_dir(persist_dir, image)):
        try:
            loaded = load_list(path)
        except ListFileError as err:
            warnings.append(f"skipped {path}: {err}")
            continue
        warnings.extend(loaded.warnings)
        runs.append(as_run(path.name, loaded))
    return runs, warnings


def images_with_runs(persist_dir: str | os.PathLike[str]) -> list[str]:
    """The full reference (``host/path:tag``, as :func:`nydus_top.runs.store.image_key` gives) of
    every image that has runs under *persist_dir*, sorted; each names its runs again through
    :func:`read_runs`."""
    root = Path(persist_dir) / runstore.RUNS_DIR
    found = []
    for directory, _subdirs, _files in os.walk(root):  # never follows symlinks
        if directory != str(root) and runstore.runs_of(directory):
            found.append(os.path.relpath(directory, root))
    return sorted(found)
