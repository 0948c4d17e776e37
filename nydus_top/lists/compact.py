"""The files of one recording, kept compact: columns, not one Python object per file.

A headless recording can hold a container's whole life (up to the tracer's 2 million distinct
files). As :class:`nydus_top.model.records.Access` objects that costs about 500 bytes a file; here it
is 24 bytes a file plus the path's bytes (UTF-8, undecodable bytes kept exact), in one
``bytearray`` and three ``array`` columns that hold no objects for the garbage collector.

A list has a limit in bytes (:attr:`CompactList.max_bytes`): a file that would pass it is not
kept but counted in :attr:`CompactList.refused`; the owner says so once (see ``reached``).
Iterating yields :class:`nydus_top.model.records.ListedFile` rows one at a time, for a save.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator

from nydus_top.model.records import ListedFile, kept_until

PER_FILE = 24  # bytes of the columns for each file: path end, size, elapsed
MAX_BYTES = 256 << 20  # one recording's files in memory at most: 256 MiB
MAX_TOTAL_BYTES = 256 << 20  # every recording of a recorder together: 256 MiB


class Budget:
    """Bytes shared by several lists (every recording in progress): at most ``max_bytes`` together,
    however many containers start at once. Safe to use from the tracers' reader threads."""

    __slots__ = ("max_bytes", "used", "_lock")

    def __init__(self, max_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.max_bytes:
                return False
            self.used += n
            return True

    def give_back(self, n: int) -> None:
        with self._lock:
            self.used -= n


def _encode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class CompactList:
    """Files (path, size, elapsed) in first-access order, within ``max_bytes``."""

    __slots__ = ("_paths", "_ends", "_size", "_elapsed", "max_bytes", "refused", "budget", "budget_reached")

    def __init__(self, max_bytes: int = MAX_BYTES, budget: Budget | None = None) -> None:
        self._paths = bytearray()
        self._ends = array("Q")
        self._size = array("q")
        self._elapsed = array("q")
        self.max_bytes = max_bytes
        self.refused = 0  # files not kept because the limit was reached
        self.budget = budget  # shared with other lists: its limit holds too
        self.budget_reached = False  # the shared limit (not max_bytes) refused a file

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def nbytes(self) -> int:
        """Bytes the files take (columns and paths, not counting spare capacity)."""
        return len(self._paths) + PER_FILE * len(self._ends)

    @property
    def reached(self) -> bool:
        """True once a file was refused for the limit."""
        return self.refused > 0

    def append(self, path: str, size: int, elapsed_us: int) -> bool:
        """Keep one file; False (and counted in ``refused``) when it would pass the limit."""
        try:
            data = _encode(path)
        except UnicodeEncodeError:  # a lone surrogate no tracer emits: as exact as we can
            data = path.encode("utf-8", "surrogatepass")
        cost = len(data) + PER_FILE
        if self.refused or self.nbytes + cost > self.max_bytes:
            self.refused += 1
            return False
        if self.budget is not None and not self.budget.take(cost):
            self.budget_reached = True
            self.refused += 1
            return False
        self._paths += data
        self._ends.append(len(self._paths))
        self._size.append(size)
        self._elapsed.append(elapsed_us)
        return True

    def drop_after(self, elapsed_us: int) -> int:
        """Drop the last files, those traced after *elapsed_us* but for the tracer's first batch
        after it (:func:`kept_until`; files are kept in the order seen); returns how many."""
        ends, elapsed = self._ends, self._elapsed
        keep = kept_until(elapsed, elapsed_us)
        dropped = len(ends) - keep
        if dropped:
            before = self.nbytes
            del self._paths[ends[keep - 1] if keep else 0:], ends[keep:], self._size[keep:], elapsed[keep:]
            if self.budget is not None:
                self.budget.give_back(before - self.nbytes)
        return dropped

    def last(self) -> ListedFile | None:
        """The file seen last, if any."""
        if not self._ends:
            return None
        start = self._ends[-2] if len(self._ends) > 1 else 0
        path = self._paths[start:self._ends[-1]].decode("utf-8", "surrogateescape")
        return ListedFile(path, self._size[-1], self._elapsed[-1])

    def release(self) -> None:
        """Give what the files take back to the shared budget (once the list is saved; the files
        stay readable)."""
        if self.budget is not None:
            self.budget.give_back(self.nbytes)
            self.budget = None

    def total_size(self) -> int:
        """The sizes of the files added together (unknown sizes, below 0, count nothing)."""
        sizes = self._size
        if not sizes or min(sizes) >= 0:  # both at C speed: the usual case
            return sum(sizes)
        return sum(size for size in sizes if size > 0)

    def __iter__(self) -> Iterator[ListedFile]:
        paths, ends, sizes, elapsed = self._paths, self._ends, self._size, self._elapsed
        start = 0
        for i in range(len(ends)):
            end = ends[i]
            yield ListedFile(paths[start:end].decode("utf-8", "surrogateescape"), sizes[i], elapsed[i])
            start = end
