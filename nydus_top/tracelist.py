"""The curated trace list: first accesses in an explicit, editable order.

A plain-Python model sized for 100k+ entries: records are stored once by id
(``entries``), the list shown to the operator is ``rows`` (ids in order), and
deleted or excluded ids simply leave ``rows``. Every edit snapshots ``rows``
(a compact ``array``) so undo/redo are O(n) copies, never replays. Accesses
that arrive after a snapshot survive undo: they are re-appended in order.
"""

from __future__ import annotations

import fnmatch
import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nydus_top.records import Access, Overflow

UNDO_DEPTH = 64


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
    rows: array
    next_id: int
    exclusions: tuple[Exclusion, ...]


@dataclass
class TraceList:
    """Ordered, editable list of accesses with undo/redo."""

    entries: list[Access] = field(default_factory=list)  # by id
    rows: array = field(default_factory=lambda: array("l"))  # ids in display order
    flagged: set[int] = field(default_factory=set)  # ids created at runtime (upper dir only)
    exclusions: tuple[Exclusion, ...] = ()
    overflows: list[Overflow] = field(default_factory=list)
    _by_path: dict[str, int] = field(default_factory=dict)
    _matchers: list[re.Pattern[str]] = field(default_factory=list)
    _merged: set[int] = field(default_factory=set)  # ids that came from merges, not the tracer
    _undo: list[_State] = field(default_factory=list)
    _redo: list[_State] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, row: int) -> Access:
        return self.entries[self.rows[row]]

    def row_id(self, row: int) -> int:
        return self.rows[row]

    def paths(self) -> list[str]:
        """Paths in display order."""
        entries = self.entries
        return [entries[i].path for i in self.rows]

    def accesses(self) -> list[Access]:
        entries = self.entries
        return [entries[i] for i in self.rows]

    # -- ingest ------------------------------------------------------------------------------

    def extend(self, records: Iterable[Access | Overflow]) -> int:
        """Append new records (duplicates of a known path are ignored). Returns rows added."""
        added = 0
        entries, by_path, rows, matchers = self.entries, self._by_path, self.rows, self._matchers
        for rec in records:
            if isinstance(rec, Overflow):
                self.overflows.append(rec)
                continue
            if rec.path in by_path:
                continue
            ident = len(entries)
            entries.append(rec)
            by_path[rec.path] = ident
            if matchers and any(m.match(rec.path) for m in matchers):
                continue
            rows.append(ident)
            added += 1
        return added

    def merge(self, other: Sequence[Access]) -> int:
        """Merge another run: paths not yet present are appended in their order (one undo step)."""
        self._checkpoint()
        first = len(self.entries)
        added = self.extend(other)
        self._merged.update(range(first, len(self.entries)))
        return added

    # -- edits (each is one undo step) -------------------------------------------------------

    def delete(self, rows: Iterable[int]) -> int:
        """Remove the given row positions. Returns how many were removed."""
        drop = {r for r in rows if 0 <= r < len(self.rows)}
        if not drop:
            return 0
        self._checkpoint()
        self.rows = array("l", (ident for pos, ident in enumerate(self.rows) if pos not in drop))
        return len(drop)

    def exclude(self, exclusion: Exclusion) -> int:
        """Remove every matching row and keep later matches out. Raises re.error on a bad regex."""
        matcher = exclusion.compile()
        self._checkpoint()
        self.exclusions = (*self.exclusions, exclusion)
        self._matchers.append(matcher)
        return self._keep(lambda a: not matcher.match(a.path))

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
        chosen = set(picked)
        rest = [ident for pos, ident in enumerate(self.rows) if pos not in chosen]
        target = max(0, min(target, len(rest)))
        if picked == list(range(target, target + len(picked))):
            return picked
        self._checkpoint()
        moved = [self.rows[r] for r in picked]
        self.rows = array("l", rest[:target] + moved + rest[target:])
        return list(range(target, target + len(moved)))

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

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._state())
        self._restore(self._undo.pop())
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._state())
        self._restore(self._redo.pop())
        return True

    # -- search ------------------------------------------------------------------------------

    def find(self, pattern: re.Pattern[str], start: int, backwards: bool = False) -> int | None:
        """Next row at or after ``start`` (wrapping) whose path matches; None if none does."""
        n = len(self.rows)
        if n == 0:
            return None
        entries, rows = self.entries, self.rows
        step = -1 if backwards else 1
        for k in range(n):
            pos = (start + step * k) % n
            if pattern.search(entries[rows[pos]].path):
                return pos
        return None

    # -- internals ---------------------------------------------------------------------------

    def _keep(self, predicate: Callable[[Access], bool]) -> int:
        entries = self.entries
        before = len(self.rows)
        self.rows = array("l", (i for i in self.rows if predicate(entries[i])))
        return before - len(self.rows)

    def _state(self) -> _State:
        return _State(array("l", self.rows), len(self.entries), self.exclusions)

    def _checkpoint(self) -> None:
        self._undo.append(self._state())
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()

    def _restore(self, state: _State) -> None:
        self.exclusions = state.exclusions
        self._matchers = [e.compile() for e in state.exclusions]
        rows = array("l", state.rows)
        # Accesses traced after the snapshot stay, unless an exclusion still in force hides them.
        for ident in range(state.next_id, len(self.entries)):
            if ident in self._merged:  # merged after the snapshot: the undone step itself
                continue
            if not any(m.match(self.entries[ident].path) for m in self._matchers):
                rows.append(ident)
        self.rows = rows
