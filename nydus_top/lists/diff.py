"""Two runs or lists side by side: files only in one, files that moved, time deltas."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nydus_top.model.records import Listable

DEFAULT_MOVED = 10  # positions a file must move by to be reported as moved


@dataclass(frozen=True, slots=True)
class Moved:
    """A file in both lists whose position or first-access time differs."""

    path: str
    position_a: int
    position_b: int
    elapsed_a: int | None
    elapsed_b: int | None

    @property
    def shift(self) -> int:
        return self.position_b - self.position_a

    @property
    def delta_us(self) -> int | None:
        if self.elapsed_a is None or self.elapsed_b is None:
            return None
        return self.elapsed_b - self.elapsed_a


@dataclass(frozen=True, slots=True)
class ListDiff:
    only_a: tuple[str, ...]  # in A's order
    only_b: tuple[str, ...]  # in B's order
    moved: tuple[Moved, ...]  # moved by more than the threshold, largest shift first
    common: int  # files in both

    def as_json(self) -> dict[str, object]:
        """The diff for scripts; positions 1-based, as every screen and command shows them."""
        return {
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "moved": [{"path": m.path, "position_a": m.position_a + 1, "position_b": m.position_b + 1,
                       "shift": m.shift, "elapsed_a": m.elapsed_a, "elapsed_b": m.elapsed_b,
                       "delta_us": m.delta_us} for m in self.moved],
            "common": self.common,
        }


def _positions(entries: Iterable[Listable]) -> dict[str, tuple[int, int | None]]:
    result: dict[str, tuple[int, int | None]] = {}
    for entry in entries:
        if entry.path not in result:
            result[entry.path] = (len(result), entry.elapsed_us)
    return result


def diff(a: Iterable[Listable], b: Iterable[Listable], *, moved_by: int = DEFAULT_MOVED) -> ListDiff:
    """Compare *a* with *b*; a file counts as moved when its position shifts by more than *moved_by*."""
    pa, pb = _positions(a), _positions(b)
    moved = [Moved(path, pos, pb[path][0], elapsed, pb[path][1])
             for path, (pos, elapsed) in pa.items() if path in pb and abs(pb[path][0] - pos) > moved_by]
    moved.sort(key=lambda m: (-abs(m.shift), m.position_a))
    return ListDiff(
        only_a=tuple(p for p in pa if p not in pb),
        only_b=tuple(p for p in pb if p not in pa),
        moved=tuple(moved),
        common=sum(1 for p in pa if p in pb),
    )
