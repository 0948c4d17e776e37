"""Byte ranges of files: exact unions as recorded, rounded to a granularity for prefetch.

A :class:`RangeSet` is a sorted list of disjoint, non-adjacent half-open intervals, kept as two
arrays of 64-bit offsets (16 bytes an interval: a range list of 8M ranges holds in 128 MiB). A file's
ranges in a :class:`RangeBook` are a RangeSet, or ``WHOLE`` (``None``) when the whole file counts
(read whole, mapped, too many ranges); a path the book has nothing for has no range data, which
a range list also writes as whole (``null``).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from operator import itemgetter

DEFAULT_GRANULARITY = 1 << 20  # nydus' default chunk size; 0 keeps ranges exact
MAX_RANGE_END = 1 << 42  # 4 TiB: a range read back ending beyond this is refused (no image file is that big)
WHOLE = None  # the whole file counts


class RangeSet:
    """Union of [start, end) byte intervals, kept merged (touching intervals join)."""

    __slots__ = ("_starts", "_ends")

    def __init__(self, intervals: Iterable[tuple[int, int]] = ()) -> None:
        self._starts = array("Q")
        self._ends = array("Q")
        for start, end in intervals:
            self.add(start, end)

    @classmethod
    def from_pairs(cls, pairs: object) -> RangeSet:
        """From ``[[offset, size], ...]`` (the range list format, as JSON decoded it). Raises
        ValueError (one line) unless each pair is two integers, offset >= 0, size > 0 and the
        end at most MAX_RANGE_END."""
        if not isinstance(pairs, list):
            raise ValueError("ranges must be a list of [offset, size] pairs or null")
        last, ordered = -1, True
        for pair in pairs:
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
                raise ValueError(f"a range must be [offset, size], two integers, got {_shown(pair)}")
            offset, size = pair
            if offset < 0 or size <= 0 or offset + size > MAX_RANGE_END:
                raise ValueError(f"bad range [{offset}, {size}]: need offset >= 0, size > 0, "
                                 f"end <= {MAX_RANGE_END}")
            ordered, last = ordered and offset >= last, offset
        out = cls()
        # Added in order of offset, each appends or joins the last: linear. In a file's order a
        # hostile list (reversed: each add shifts every interval) took 162 s for 1M ranges.
        for offset, size in pairs if ordered else sorted(pairs, key=itemgetter(0)):
            out.add(offset, offset + size)
        return out

    @property
    def end(self) -> int:
        """Where the last interval ends (0 when empty)."""
        return self._ends[-1] if self._ends else 0

    def add(self, start: int, end: int) -> int:
        """Add [start, end); returns the bytes newly covered."""
        if end <= start:
            return 0
        starts, ends = self._starts, self._ends
        if not ends or start > ends[-1]:  # beyond the last (reads in order, a range list read back)
            starts.append(start)
            ends.append(end)
            return end - start
        lo = bisect_left(ends, start)  # first interval ending at or after start: it may touch
        hi = lo
        covered = 0
        while hi < len(starts) and starts[hi] <= end:
            covered += ends[hi] - starts[hi]
            hi += 1
        if hi > lo:
            start = min(start, starts[lo])
            end = max(end, ends[hi - 1])
        starts[lo:hi] = array("Q", (start,))
        ends[lo:hi] = array("Q", (end,))
        return end - start - covered

    def update(self, other: RangeSet) -> None:
        """Add every interval of *other*: both sorted, merged in one pass (linear; added one by
        one into the middle, two interleaved sets cost the product of their sizes)."""
        if not other._starts:
            return
        if not self._starts or other._starts[0] > self._ends[-1]:
            self._starts.extend(other._starts)
            self._ends.extend(other._ends)
            return
        merged = RangeSet()
        for start, end in heapq.merge(self, other):  # by start: each appends or joins the last
            merged.add(start, end)
        self._starts, self._ends = merged._starts, merged._ends

    def union(self, other: RangeSet) -> RangeSet:
        out = self.copy()
        out.update(other)
        return out

    def copy(self) -> RangeSet:
        out = RangeSet()
        out._starts, out._ends = self._starts[:], self._ends[:]
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._starts == other._starts and self._ends == other._ends

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    @property
    def bytes(self) -> int:
        return sum(e - s for s, e in self)

    def covers(self, size: int) -> bool:
        """Does the set cover all of a file of ``size`` bytes?"""
        return size <= 0 or (len(self._starts) >= 1 and self._starts[0] <= 0 and self._ends[0] >= size)

    def rounded(self, granularity: int, size: int | None = None) -> RangeSet:
        """Each interval widened to multiples of ``granularity`` (0: exact), clipped to ``size``."""
        out = RangeSet()
        for start, end in self:
            if granularity > 0:
                start -= start % granularity
                end += -end % granularity
            if size is not None:
                end = min(end, size)
            out.add(start, end)
        return out

    def pairs(self) -> list[list[int]]:
        """``[[offset, size], ...]`` as a range list writes them."""
        return [[s, e - s] for s, e in self]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def prefetch_ranges(ranges: RangeSet | None, size: int | None, granularity: int) -> list[list[int]] | None:
    """What a range list says for one file: pairs, or None (whole file) for WHOLE, for no data,
    and for ranges that cover the file once rounded."""
    if ranges is None:
        return None
    out = ranges.rounded(granularity, size)
    if size is not None and out.covers(size):
        return None
    return out.pairs()


def prefetch_bytes(ranges: RangeSet | None, size: int | None, granularity: int) -> int:
    """Bytes a prefetch of this file moves: the rounded ranges, or the whole size."""
    if ranges is None:
        return size or 0
    out = ranges.rounded(granularity, size)
    return out.bytes


class RangeBook:
    """Per path: the ranges read (a RangeSet) or WHOLE. Paths without an entry have no data."""

    __slots__ = ("_by_path",)

    def __init__(self) -> None:
        self._by_path: dict[str, RangeSet | None] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._by_path

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: str) -> RangeSet | None:
        """The ranges of ``path``; WHOLE (None) also when there is no data (see ``in``)."""
        return self._by_path.get(path)

    def items(self) -> Iterator[tuple[str, RangeSet | None]]:
        return iter(self._by_path.items())

    def add(self, path: str, start: int, end: int) -> int:
        """Record [start, end) read from ``path``; returns new bytes (0 if the file is whole)."""
        try:
            ranges = self._by_path[path]
        except KeyError:
            ranges = self._by_path[path] = RangeSet()
        if ranges is None:
            return 0
        return ranges.add(start, end)

    def set(self, path: str, ranges: RangeSet | None) -> None:
        """Replace what the book says about ``path`` (a RangeSet or WHOLE)."""
        self._by_path[path] = ranges

    def mark_whole(self, path: str) -> None:
        self._by_path[path] = WHOLE

    def merge(self, other: RangeBook) -> None:
        """Union with another book: WHOLE wins; a path only one book knows keeps its data."""
        for path, ranges in other.items():
            if path not in self._by_path:
                self._by_path[path] = None if ranges is None else ranges.copy()
                continue
            mine = self._by_path[path]
            if mine is not None:
                if ranges is None:
                    self._by_path[path] = None
                else:
                    mine.update(ranges)

    def read_bytes(self, path: str, size: int | None) -> int | None:
        """Bytes read of ``path`` (its size when whole), None without data."""
        if path not in self._by_path:
            return None
        ranges = self._by_path[path]
        if ranges is None:
            return size
        return ranges.bytes



def totals(files: Iterable[tuple[str, int | None]], book: RangeBook, granularity: int) -> tuple[int, int, int]:
    """(files with range data, prefetch bytes with ranges, prefetch bytes of whole files) for
    ``(path, size)`` pairs: the header line "prefetch X with ranges / Y whole files"."""
    known = with_ranges = whole = 0
    for path, size in files:
        whole += size or 0
        if path in book:
            known += 1
            with_ranges += prefetch_bytes(book.get(path), size, granularity)
        else:
            with_ranges += size or 0
    return known, with_ranges, whole
