"""Many paths, each kept once and compactly: the distinct paths of huge lists and of many runs.

A :class:`PathTable` keeps every path as its UTF-8 bytes in one buffer and finds it again through
an open-addressing table of ids keyed by its hash: about 90 bytes for a 60-byte path, where a str
in a dict with an int id takes about 200 (issue 18 item 7: a 3M-entry list's consensus in 512 MiB).
Ids are given in the order paths are first added, from 0; ``table[id]`` is the path again.

Every str round-trips exactly (``surrogatepass``: a file name's undecodable bytes, kept as
surrogates, come back as they were).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, islice, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any, cast

from nydus_top.model.records import Listable

_FREE = -1
_CODEC = ("utf-8", "surrogatepass")


DICT_PATHS = 1 << 17  # up to this many paths a dict finds them too (fast); beyond, the compact index alone


class PathTable:
    """Distinct paths by id: ``id_of`` adds, ``find`` looks up, ``table[id]`` gives the path.

    Up to DICT_PATHS paths a dict (path -> id) also finds them, at C speed (a tally of 100 runs
    of 10k files); beyond, it is dropped for the hash table of 32-bit ids (about 200 bytes a
    path less)."""

    __slots__ = ("_blob", "_ends", "_hashes", "_slots", "_mask", "_dict", "_dict_paths")

    def __init__(self, paths: Iterable[str] = (), *, dict_paths: int | None = None) -> None:
        self._blob = bytearray()
        self._ends = array("q")  # where each path's bytes end in _blob
        self._hashes = array("q")  # each path's hash (its slot, and a quick test before comparing)
        self._slots = array("i")  # beyond DICT_PATHS: ids by hash, linear probing; at most half full
        self._mask = 0
        self._dict: dict[str, int] | None = {}
        self._dict_paths = DICT_PATHS if dict_paths is None else dict_paths
        for path in paths:
            self.id_of(path)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, fid: int) -> str:
        ends = self._ends
        if fid < 0:
            fid += len(ends)
        end = ends[fid]  # IndexError beyond the last
        start = ends[fid - 1] if fid else 0
        return self._blob[start:end].decode(*_CODEC)

    def __iter__(self) -> Iterator[str]:
        return (self[fid] for fid in range(len(self._ends)))

    def buffers(self) -> tuple[bytearray, array[int]]:
        """Every path's UTF-8 bytes in one buffer, and where each ends in it (path *i* is
        ``blob[ends[i - 1]:ends[i]]``, from 0 for the first): for C code that compares paths.
        Not to be changed; a C caller holds them only while it runs."""
        return self._blob, self._ends

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.find(path) != _FREE

    def find(self, path: str) -> int:
        """The id of *path*, -1 when it was never added."""
        if self._dict is not None:
            return self._dict.get(path, _FREE)
        return self._probe(path, hash(path))[0]

    def id_of(self, path: str) -> int:
        """The id of *path*, added (as the next id) when new."""
        known = self._dict
        if known is not None:
            fid = known.get(path, _FREE)
            if fid != _FREE:
                return fid
            fid = known[path] = self._append(path, hash(path))
            if fid >= self._dict_paths:
                self._dict = None
                self._rehash(1 << max(3, (4 * (fid + 1)).bit_length()))
            return fid
        h = hash(path)
        fid, slot = self._probe(path, h)
        if fid != _FREE:
            return fid
        fid = self._append(path, h)
        self._slots[slot] = fid
        if 2 * (fid + 1) > len(self._slots):
            self._rehash(2 * len(self._slots))
        return fid

    def ids_of(self, paths: Sequence[str]) -> array[int]:
        """:meth:`id_of` of each of *paths*, in order (new ones added in that order); while the
        dict finds paths, the known ones are looked up at C speed and only new ones one by one."""
        known = self._dict
        if known is None:
            return array("i", map(self.id_of, paths))
        got = list(map(known.get, paths))
        missing = list(compress(range(len(got)), map(is_, got, repeat(None))))
        if not missing:
            return array("i", cast("list[int]", got))
        new = list(dict.fromkeys(map(paths.__getitem__, missing)))  # each once, in first-seen order
        if len(self._ends) + len(new) <= self._dict_paths:  # all fit in the dict: added at once
            first = len(self._ends)
            self._extend(new)
            known.update(zip(new, range(first, first + len(new)), strict=True))
            for at in missing:
                got[at] = known[paths[at]]
        else:
            for at in missing:
                got[at] = self.id_of(paths[at])
        return array("i", cast("list[int]", got))

    def _extend(self, new: list[str]) -> None:
        """Append *new* (distinct paths none of which is known) as the next ids."""
        encoded = [path.encode(*_CODEC) for path in new]
        self._ends.extend(islice(accumulate(map(len, encoded), initial=len(self._blob)), 1, None))
        self._blob += b"".join(encoded)
        self._hashes.extend(map(hash, new))

    def _append(self, path: str, h: int) -> int:
        fid = len(self._ends)
        self._blob += path.encode(*_CODEC)
        self._ends.append(len(self._blob))
        self._hashes.append(h)
        return fid

    def truncate(self, count: int) -> None:
        """Forget every path from id *count* on (a run that turned out bad after its paths were added)."""
        if count >= len(self._ends):
            return
        if self._dict is not None:
            for fid in range(count, len(self._ends)):
                del self._dict[self[fid]]
        del self._blob[self._ends[count - 1] if count else 0:]
        del self._ends[count:]
        del self._hashes[count:]
        if self._dict is None:
            self._rehash(len(self._slots))

    def _probe(self, path: str, h: int) -> tuple[int, int]:
        """(id of *path* or -1, the slot it is in or would go in)."""
        slots, hashes, mask = self._slots, self._hashes, self._mask
        slot = h & mask
        while True:
            fid = slots[slot]
            if fid == _FREE or (hashes[fid] == h and self[fid] == path):
                return fid, slot
            slot = (slot + 1) & mask

    def _rehash(self, size: int) -> None:
        slots = array("i", [_FREE]) * size
        mask = size - 1
        for fid, h in enumerate(self._hashes):
            slot = h & mask
            while slots[slot] != _FREE:
                slot = (slot + 1) & mask
            slots[slot] = fid
        self._slots, self._mask = slots, mask


NONE = -1  # a size or time a list did not give
LARGEST = (1 << 63) - 1  # sizes and times beyond this (a hostile list's) are held at it: the arrays hold 64 bits


@dataclass(frozen=True, slots=True)
class ListColumns:
    """A list held compactly: the ids (in a PathTable) of its paths in order, each once, with
    each one's size and first-access time (NONE: not given)."""

    ids: array[int]
    sizes: array[int]
    times: array[int]

    def __len__(self) -> int:
        return len(self.ids)


COLUMN_CHUNK = 1 << 16  # entries columns_of takes at a time (a huge list is never held whole twice)
_path, _size, _time = attrgetter("path"), attrgetter("size"), attrgetter("elapsed_us")


def columns_of(entries: Iterable[Listable], paths: PathTable) -> ListColumns:
    """*entries* as columns of ids in *paths* (added as needed): a path's later repeats are left out.

    Taken COLUMN_CHUNK entries at a time, each chunk's columns built by map and comprehensions
    (C speed); a chunk whose paths are all new to this list (the common case) is kept whole,
    one with a repeat is filtered entry by entry."""
    ids, sizes, times = array("i"), array("q"), array("q")
    seen = Marks(paths)
    source = iter(entries)
    while chunk := list(islice(source, COLUMN_CHUNK)):
        chunk_ids = paths.ids_of(list(map(_path, chunk)))
        if seen.fresh(chunk_ids):
            ids += chunk_ids
            sizes += _clamped(list(map(_size, chunk)))
            times += _clamped(list(map(_time, chunk)))
            continue
        again = seen.again
        for fid, entry in zip(chunk_ids, chunk, strict=True):
            if not again(fid):
                ids.append(fid)
                sizes.append(_clamp(entry.size))
                times.append(_clamp(entry.elapsed_us))
    return ListColumns(ids, sizes, times)


def _clamped(values: list[int | None]) -> array[int]:
    """*values* as 64-bit numbers (:func:`_clamp`)."""
    try:
        return array("q", cast("list[int]", values))  # all known and in range: at C speed
    except (TypeError, OverflowError):
        return array("q", map(_clamp, values))


def _clamp(value: int | None) -> int:
    """*value* as a 64-bit number: None as NONE, beyond LARGEST held at it."""
    return NONE if value is None else value if value <= LARGEST else LARGEST


def pick(keys: Sequence[Any], table: Any) -> tuple[Any, ...]:
    """``table[key]`` for each of *keys*, in a tuple, at C speed."""
    if len(keys) == 1:
        return (table[keys[0]],)
    return itemgetter(*keys)(table) if keys else ()


class Marks:
    """Which ids of a PathTable one list has named so far (one byte an id). The ids of a first
    :meth:`fresh` are marked only when another call asks (a list of one chunk never is)."""

    __slots__ = ("_marks", "_pending", "_named")

    def __init__(self, paths: PathTable) -> None:
        self._marks = bytearray(len(paths))
        self._pending: array[int] | None = None  # named by fresh, not marked yet
        self._named = False  # whether any id was named

    def fresh(self, ids: array[int]) -> bool:
        """Whether *ids* are distinct and none was named before; if so they are all named
        (otherwise none is: take them one by one with :meth:`again`)."""
        if len(set(ids)) != len(ids):
            return False
        if not self._named:
            self._pending, self._named = ids, True
            return True
        self._flush()
        marks = self._marks
        self._fit(max(ids, default=-1))
        if any(pick(ids, marks)):
            return False
        for fid in ids:
            marks[fid] = 1
        return True

    def again(self, fid: int) -> bool:
        """Whether *fid* was named before; names it."""
        if self._pending is not None:
            self._flush()
        self._named = True
        marks = self._marks
        if fid >= len(marks):
            self._fit(fid)
        elif marks[fid]:
            return True
        marks[fid] = 1
        return False

    def _fit(self, fid: int) -> None:
        marks = self._marks
        if fid >= len(marks):
            marks.extend(bytes(fid + 1 - len(marks)))

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            self._fit(max(pending))
            marks = self._marks
            for fid in pending:
                marks[fid] = 1
