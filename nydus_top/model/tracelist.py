"""The curated trace list: first accesses in an explicit, editable order.

A plain-Python model sized for 100k+ entries. Records are stored once by id, in
columns (a list of path strings and compact arrays), so a big trace costs little
memory and holds no per-record objects for the cyclic GC to scan (a full collection
over 100k dataclass instances stalls the UI for ~100 ms). The list shown to the
operator is ``rows`` (ids in order); deleted or excluded ids simply leave ``rows``.
Every edit snapshots ``rows`` (an ``array`` memcpy), so undo/redo never replay.
Accesses that arrive after a snapshot survive undo: they are re-appended in order. Those traced
after start-up ended (``drop_after``: a stamped ready line) leave the list for good.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from nydus_top.lists.ranges import RangeBook, totals
from nydus_top.model.records import KINDS, Access, Listable, Overflow, kept_until

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison  # typing only: the stubs' name for what sorted() accepts

UNDO_DEPTH = 64
_UNKNOWN = -1  # a size or elapsed time a loaded list did not give
_KIND_NAMES = ("", *KINDS)
_KIND_CODES = {name: code for code, name in enumerate(_KIND_NAMES)}


class Row(NamedTuple):
    """One row as read back from the list; kind/pid/comm are empty for loaded lists."""

    path: str
    size: int | None
    elapsed_us: int | None
    kind: str
    pid: int
    comm: str


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A pattern that removes matching paths now and keeps them out later."""

    pattern: str
    regex: bool  # False: shell glob matched against the whole path

    def compile(self) -> re.Pattern[str]:
        """The compiled matcher; raises re.error for a bad regex."""
        return re.compile(self.pattern if self.regex else fnmatch.translate(self.pattern))

    def __str__(self) -> str:
        return f"re:{self.pattern}" if self.regex else self.pattern


@dataclass(slots=True)
class _State:
    rows: array[int]
    next_id: int
    exclusions: tuple[Exclusion, ...]
    merged_ranges: tuple[RangeBook, ...] = ()
    cut: tuple[str, int] | None = None


@dataclass
class TraceList:
    """Ordered, editable list of accesses with undo/redo."""

    rows: array[int] = field(default_factory=lambda: array("l"))  # ids in display order
    flagged: set[int] = field(default_factory=set)  # ids created at runtime (upper dir only)
    exclusions: tuple[Exclusion, ...] = ()
    overflows: list[Overflow] = field(default_factory=list)
    _path: list[str] = field(default_factory=list)  # columns, indexed by id
    _size: array[int] = field(default_factory=lambda: array("q"))
    _elapsed: array[int] = field(default_factory=lambda: array("q"))
    _kind: bytearray = field(default_factory=bytearray)
    _pid: array[int] = field(default_factory=lambda: array("q"))
    _comm: list[str] = field(default_factory=list)
    _by_path: dict[str, int] = field(default_factory=dict)
    _matchers: list[re.Pattern[str]] = field(default_factory=list)
    _merged: set[int] = field(default_factory=set)  # ids that came from merges, not the tracer
    dropped: set[int] = field(default_factory=set)  # ids traced after start-up ended (drop_after)
    _traced_ranges: RangeBook = field(default_factory=RangeBook)  # from the range tracer
    _merged_ranges: tuple[RangeBook, ...] = ()  # one per merge step in force (undo drops it)
    _totals: tuple[tuple[int, ...], tuple[int, int, int]] | None = None  # (key, prefetch_totals) memo
    _undo: list[_State] = field(default_factory=list)
    _redo: list[_State] = field(default_factory=list)
    edits: int = 0  # curation steps so far (edits, undos, redos): a save remembers the count
    cut: tuple[str, int] | None = None  # (path, elapsed µs) the operator ended start-up at: later files stay out

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, row: int) -> Row:
        return self.entry(self.rows[row])

    @property
    def seen(self) -> int:
        """Distinct paths ever ingested (including deleted and excluded ones)."""
        return len(self._path)

    def entry(self, ident: int) -> Row:
        size, elapsed = self._size[ident], self._elapsed[ident]
        return Row(self._path[ident], None if size == _UNKNOWN else size,
                     None if elapsed == _UNKNOWN else elapsed, _KIND_NAMES[self._kind[ident]],
                     self._pid[ident], self._comm[ident])

    def row_id(self, row: int) -> int:
        ident: int = self.rows[row]
        return ident

    def paths(self) -> list[str]:
        """Paths in display order."""
        path = self._path
        return [path[i] for i in self.rows]

    def entries(self, rows: Sequence[int] | None = None) -> list[Row]:
        """Entries in display order (what a save writes), or of the given ids.

        Columns only ever grow, so a worker thread may read the ids of a ``frozen_rows()`` copy
        while the UI thread keeps ingesting and editing.
        """
        return [self.entry(i) for i in (self.rows if rows is None else rows)]

    def positions(self, ids: set[int]) -> list[int]:
        """Row positions, in order, of those of *ids* still shown (deleted or excluded ones are not)."""
        rows = self.rows
        if len(ids) <= 64:  # a few marks: C-speed scans beat a Python pass over all rows
            found = []
            for ident in ids:
                try:
                    found.append(rows.index(ident))
                except ValueError:
                    pass
            return sorted(found)
        return [pos for pos, ident in enumerate(rows) if ident in ids]

    def traced(self) -> Sequence[int]:
        """Every id the tracer gave, in the order ingested (deleted and excluded ones too), but
        those dropped: what the start read. Merged ids are other lists' files, not its reads."""
        gone = self.dropped | self._merged
        return [i for i in range(self.seen) if i not in gone] if gone else range(self.seen)

    def last_traced(self) -> Row | None:
        """The file the tracer gave last (not merged, not dropped), if any."""
        traced = self.traced()
        return self.entry(traced[-1]) if traced else None

    def frozen_rows(self) -> array[int]:
        """A copy of the current order (cheap: one memcpy)."""
        return array("l", self.rows)

    # -- ingest ------------------------------------------------------------------------------

    def extend(self, records: Iterable[Listable | Overflow]) -> int:
        """Append new records (duplicates of a known path are ignored). Returns rows added."""
        before = len(self.rows)
        by_path, matchers, paths = self._by_path, self._matchers, self._path
        add_path, add_row = paths.append, self.rows.append
        add_size, add_elapsed = self._size.append, self._elapsed.append
        add_kind, add_pid, add_comm = self._kind.append, self._pid.append, self._comm.append
        kind_codes, intern = _KIND_CODES, sys.intern
        for rec in records:
            if isinstance(rec, Overflow):
                self.overflows.append(rec)
                continue
            path = rec.path
            if path in by_path:
                continue
            ident = by_path[path] = len(paths)
            add_path(path)
            if type(rec) is Access:
                add_size(rec.size)
                add_elapsed(rec.elapsed_us)
                add_kind(kind_codes.get(rec.kind, 0))
                add_pid(rec.pid)
                add_comm(intern(rec.comm))
            else:
                add_size(_UNKNOWN if rec.size is None else rec.size)
                add_elapsed(_UNKNOWN if rec.elapsed_us is None else rec.elapsed_us)
                add_kind(0)
                add_pid(0)
                add_comm("")
            if self.cut is None and (not matchers or not any(m.match(path) for m in matchers)):
                add_row(ident)
        return len(self.rows) - before

    def merge(self, other: Sequence[Listable], ranges: RangeBook | None = None) -> int:
        """Merge another run: paths not yet present are appended in their order, and its byte
        ranges (if any) join ours by union (one undo step). A merge that would show nothing new
        (every path known or excluded, no ranges) is no edit: a saved list stays saved."""
        by_path, matchers = self._by_path, self._matchers
        if ranges is None and all(e.path in by_path or any(m.match(e.path) for m in matchers) for e in other):
            return 0
        self._checkpoint()
        first = self.seen
        added = self.extend(other)
        self._merged.update(range(first, self.seen))
        if ranges is not None:
            self._merged_ranges = (*self._merged_ranges, ranges)
        return added

    def excluded_of(self, other: Iterable[Listable]) -> list[str]:
        """The paths of *other* that an exclusion in force keeps out of the list (once each)."""
        matchers = self._matchers
        if not matchers:
            return []
        shown = {self._path[i] for i in self.rows}
        return list(dict.fromkeys(e.path for e in other
                                  if e.path not in shown and any(m.match(e.path) for m in matchers)))

    def drop_after(self, until_us: int) -> list[int]:
        """Start-up ended at *until_us* (a stamped ready line): the files traced after it go, but
        for the tracer's first batch after it (:func:`kept_until`). They leave the rows, the
        flags and the known paths, and an undo does not bring them back; not an edit (the trace
        ended there). Returns their ids."""
        traced = self.traced()
        elapsed = self._elapsed if isinstance(traced, range) else [self._elapsed[i] for i in traced]
        late = list(traced[kept_until(elapsed, until_us):])
        if late:
            gone = set(late)
            self._remove_ids(gone)
            self.dropped |= gone
            self.flagged -= gone
            for ident in late:
                del self._by_path[self._path[ident]]
        return late

    def _remove_ids(self, ids: set[int]) -> None:
        """Take *ids* out of the rows: the last rows when they are all there (the list's end in
        trace order, as usual), else in one pass."""
        rows = self.rows
        tail = 0
        while tail < len(rows) and rows[-1 - tail] in ids:
            tail += 1
        if tail == len(ids):
            del rows[len(rows) - tail:]
        else:
            self.rows = array("l", (ident for ident in rows if ident not in ids))

    # -- byte ranges -------------------------------------------------------------------------

    def set_traced_ranges(self, book: RangeBook) -> None:
        """The range tracer's current book (replaces the previous one; not an edit)."""
        self._traced_ranges = book

    def ranges(self) -> RangeBook:
        """Byte ranges per path: the tracer's, united with those of every merge in force."""
        if not self._merged_ranges:
            return self._traced_ranges
        out = RangeBook()
        out.merge(self._traced_ranges)
        for book in self._merged_ranges:
            out.merge(book)
        return out

    def has_ranges(self) -> bool:
        return bool(len(self._traced_ranges) or self._merged_ranges)

    def prefetch_totals(self, granularity: int) -> tuple[int, int, int]:
        """(rows with range data, prefetch bytes with ranges, bytes of whole files) over the
        rows; computed again only after an edit, new rows or new ranges."""
        key = (id(self._traced_ranges), *map(id, self._merged_ranges), self.edits, len(self.rows), self.seen,
               granularity)
        if self._totals is not None and self._totals[0] == key:
            return self._totals[1]
        size, path = self._size, self._path
        files = ((path[i], None if size[i] == _UNKNOWN else size[i]) for i in self.rows)
        result = totals(files, self.ranges(), granularity)
        self._totals = (key, result)
        return result

    def read_bytes(self, row: int) -> int | None:
        """Bytes read of the file at ``row`` (its size when whole), None without range data."""
        ident = self.rows[row]
        size, path = self._size[ident], self._path[ident]
        union = None
        for book in (self._traced_ranges, *self._merged_ranges):
            if path not in book:
                continue
            ranges = book.get(path)
            if ranges is None:  # whole
                return None if size == _UNKNOWN else size
            union = ranges if union is None else union.union(ranges)
        return None if union is None else union.bytes

    # -- edits (each is one undo step) -------------------------------------------------------

    def delete(self, rows: Iterable[int]) -> int:
        """Remove the given row positions. Returns how many were removed."""
        drop = {r for r in rows if 0 <= r < len(self.rows)}
        if not drop:
            return 0
        self._checkpoint()
        if len(drop) <= 64:  # the usual case: a few rows, deleted in place (memmove)
            for pos in sorted(drop, reverse=True):
                del self.rows[pos]
        else:
            self.rows = array("l", (ident for pos, ident in enumerate(self.rows) if pos not in drop))
        return len(drop)

    def cut_after(self, row: int) -> int:
        """End the list at *row*: the rows after it go, and files traced later stay out (start-up
        ended there). Returns how many rows were removed."""
        if not 0 <= row < len(self.rows):
            return 0
        self._checkpoint()
        entry = self[row]
        self.cut = (entry.path, entry.elapsed_us or 0)
        removed = len(self.rows) - row - 1
        del self.rows[row + 1:]
        return removed

    def exclude(self, exclusion: Exclusion) -> int:
        """Remove every matching row and keep later matches out. Raises re.error on a bad regex."""
        matcher = exclusion.compile()
        self._checkpoint()
        self.exclusions = (*self.exclusions, exclusion)
        self._matchers.append(matcher)
        return self._keep(lambda path: not matcher.match(path))

    def prune_flagged(self) -> int:
        """Remove every row flagged as created at runtime."""
        if not self.flagged.intersection(self.rows):
            return 0
        self._checkpoint()
        flagged = self.flagged
        before = len(self.rows)
        self.rows = array("l", (i for i in self.rows if i not in flagged))
        return before - len(self.rows)

    def move(self, rows: Sequence[int], target: int) -> list[int]:
        """Move the given rows (kept in relative order) so the first lands at ``target``.

        ``target`` is clamped to the valid range. Returns the new positions of the moved rows.
        """
        picked = sorted({r for r in rows if 0 <= r < len(self.rows)})
        if not picked:
            return []
        target = max(0, min(target, len(self.rows) - len(picked)))
        if picked == list(range(target, target + len(picked))):
            return picked
        self._checkpoint()
        first, last = picked[0], picked[-1] + 1
        if last - first == len(picked):  # a contiguous block: slice it out and back in
            block = self.rows[first:last]
            del self.rows[first:last]
        else:
            chosen = set(picked)
            block = array("l", (self.rows[r] for r in picked))
            self.rows = array("l", (ident for pos, ident in enumerate(self.rows) if pos not in chosen))
        self.rows[target:target] = block
        return list(range(target, target + len(picked)))

    def sort(self, key: Callable[[str], SupportsRichComparison]) -> bool:
        """Order the rows by ``key(path)`` (stable; one undo step). False if already in that order."""
        path = self._path
        ordered = array("l", sorted(self.rows, key=lambda ident: key(path[ident])))
        if ordered == self.rows:
            return False
        self._checkpoint()
        self.rows = ordered
        return True

    def set_flags(self, flagged_paths: Iterable[str]) -> int:
        """Mark accesses whose path the container created at runtime. Returns how many."""
        by_path = self._by_path
        self.flagged = {by_path[p] for p in flagged_paths if p in by_path}
        return len(self.flagged)

    def is_flagged(self, row: int) -> bool:
        return self.rows[row] in self.flagged

    # -- undo/redo ---------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._state())
        self._restore(self._undo.pop())
        self.edits += 1
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._state())
        self._restore(self._redo.pop())
        self.edits += 1
        return True

    # -- search ------------------------------------------------------------------------------

    def find(self, pattern: re.Pattern[str], start: int, backwards: bool = False) -> int | None:
        """Next row at or after ``start`` (wrapping) whose path matches; None if none does."""
        n = len(self.rows)
        if n == 0:
            return None
        paths, rows = self._path, self.rows
        step = -1 if backwards else 1
        for k in range(n):
            pos = (start + step * k) % n
            if pattern.search(paths[rows[pos]]):
                return pos
        return None

    # -- internals ---------------------------------------------------------------------------

    def _keep(self, predicate: Callable[[str], bool]) -> int:
        paths = self._path
        before = len(self.rows)
        self.rows = array("l", (i for i in self.rows if predicate(paths[i])))
        return before - len(self.rows)

    def _state(self) -> _State:
        return _State(array("l", self.rows), self.seen, self.exclusions, self._merged_ranges, self.cut)

    def _checkpoint(self) -> None:
        self._undo.append(self._state())
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()
        self.edits += 1

    def _restore(self, state: _State) -> None:
        self.exclusions = state.exclusions
        self.cut = state.cut
        self._merged_ranges = state.merged_ranges
        self._matchers = [e.compile() for e in state.exclusions]
        dropped = self.dropped
        rows = array("l", (i for i in state.rows if i not in dropped) if dropped else state.rows)
        # Accesses traced after the snapshot stay, unless an exclusion or a cut still in force hides them.
        for ident in range(state.next_id, self.seen):
            if ident in self._merged or state.cut is not None:  # merged after the snapshot: the undone step itself
                continue
            if ident in dropped:  # traced after start-up ended
                continue
            if not any(m.match(self._path[ident]) for m in self._matchers):
                rows.append(ident)
        self.rows = rows

