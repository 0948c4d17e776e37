"""The files of one recording, kept compact: columns, not one Python object per file.

A headless recording can hold a container's whole life (up to the tracer's 2 million distinct
files). As :class:`nydus_top.records.Access` objects that costs about 500 bytes a file; here it
is 24 bytes a file plus the path's bytes (UTF-8, undecodable bytes kept exact), in one
``bytearray`` and three ``array`` columns that hold no objects for the garbage collector.

A list has a limit in bytes (:attr:`CompactList.max_bytes`): a file that would pass it is not
kept but counted in :attr:`CompactList.refused`; the owner says so once (see ``reached``).
Iterating yields :class:`nydus_top.records.ListedFile` rows one at a time, for a save.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

from nydus_top.records import ListedFile

PER_FILE = 24  # bytes of the columns for each file: path end, size, elapsed
MAX_BYTES = 256 << 20  # one recording's files in memory at most: 256 MiB


def _encode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class CompactList:
    """Files (path, size, elapsed) in first-access order, within ``max_bytes``."""

    __slots__ = ("_paths", "_ends", "_size", "_elapsed", "max_bytes", "refused")

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._paths = bytearray()
        self._ends = array("Q")
        self._size = array("q")
        self._elapsed = array("q")
        self.max_bytes = max_bytes
        self.refused = 0  # files not kept because the limit was reached

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
        if self.refused or self.nbytes + len(data) + PER_FILE > self.max_bytes:
            self.refused += 1
            return False
        self._paths += data
        self._ends.append(len(self._paths))
        self._size.append(size)
        self._elapsed.append(elapsed_us)
        return True

    def __iter__(self) -> Iterator[ListedFile]:
        paths, ends, sizes, elapsed = self._paths, self._ends, self._size, self._elapsed
        start = 0
        for i in range(len(ends)):
            end = ends[i]
            yield ListedFile(paths[start:end].decode("utf-8", "surrogateescape"), sizes[i], elapsed[i])
            start = end
