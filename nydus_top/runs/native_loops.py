"""The per-entry loops of the tally and of leave-one-out at C speed (native/tally.c), on arrays.

Each function does what its docstring says and returns True, or returns False having done
nothing its caller may rely on (no native module, arrays of another type or length, an id out of
range): the caller then takes its plain Python path, whose result is the reference. The C side
checks every index against the array it indexes; these wrappers check types and lengths.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any, TypeGuard

try:
    from nydus_top._native import ffi, lib
except ImportError:  # pragma: no cover - the module is built at install; without it, the Python paths
    ffi = lib = None

AVAILABLE = lib is not None
_INT64_MAX = (1 << 63) - 1

# What leaving one run out can make of a file's figures (evaluate._held_figures): runs that read it,
# position thresholds t1, t2; medians low, middle, high; the same for times (u1, u2 may be inf);
# the median time over every run; the largest and second largest size.
Held = tuple[int, int, int, float, float, float, float, float, float, float, float, float, int, int]


def _ok(values: object, typecode: str) -> TypeGuard[array[int]]:
    return isinstance(values, array) and values.typecode == typecode


def _i32(values: array[int]) -> Any:
    return ffi.from_buffer("int32_t[]", values)


def _i64(values: array[int]) -> Any:
    return ffi.from_buffer("int64_t[]", values, require_writable=False)


def _w64(values: array[int]) -> Any:
    return ffi.from_buffer("int64_t[]", values, require_writable=True)


def count_ids(ids: array[int], counts: array[int]) -> bool:
    """``counts[fid] += 1`` for each of *ids* (an ``i`` array; *counts* a ``q`` array)."""
    if lib is None or not (_ok(ids, "i") and _ok(counts, "q")):
        return False
    return bool(lib.nt_count_ids(_i32(ids), len(ids), _w64(counts), len(counts)) == 0)


def scatter(ids: array[int], times: array[int], sizes: array[int], cursor: array[int], positions: array[int],
            times_out: array[int], sizes_out: array[int]) -> bool:
    """A counting sort's second pass over one run: entry *i* (its id *fid*) goes to
    ``at = cursor[fid]`` (then one more): ``positions[at] = i``, ``times_out[at] = times[i]`` and
    ``sizes_out[at] = sizes[i]``."""
    n, total = len(ids), len(positions)
    if lib is None or not (_ok(ids, "i") and _ok(times, "q") and _ok(sizes, "q") and len(times) == len(sizes) == n
                           and _ok(cursor, "q") and _ok(positions, "i") and _ok(times_out, "q")
                           and _ok(sizes_out, "q") and len(times_out) == len(sizes_out) == total):
        return False
    done = lib.nt_scatter(_i32(ids), _i64(times), _i64(sizes), n, _w64(cursor), len(cursor),
                          ffi.from_buffer("int32_t[]", positions, require_writable=True), _w64(times_out),
                          _w64(sizes_out), total)
    return bool(done == 0)


def bounds(values: array[int]) -> tuple[int, int] | None:
    """``(min(values), max(values))`` of a ``q`` array, (0, 0) when empty; None: not a ``q`` array."""
    if lib is None or not _ok(values, "q"):
        return None
    if not values:
        return 0, 0
    lo, hi = ffi.new("int64_t *"), ffi.new("int64_t *")
    lib.nt_bounds(_i64(values), len(values), lo, hi)
    return int(lo[0]), int(hi[0])


def sort_groups(starts: array[int], values: array[int]) -> bool:
    """Sort each group ``values[starts[f]:starts[f + 1]]`` in place (*starts*: a ``q`` array rising
    from 0 to ``len(values)``; *values* an ``i`` or ``q`` array)."""
    if lib is None or not (_ok(starts, "q") and len(starts) >= 1 and (_ok(values, "i") or _ok(values, "q"))):
        return False
    width = values.itemsize
    buffer = ffi.from_buffer("int32_t[]" if width == 4 else "int64_t[]", values, require_writable=True)
    return bool(lib.nt_sort_groups(_i64(starts), len(starts) - 1, buffer, len(values), width) == 0)


def median_keys(starts: array[int], positions: array[int], min_seen: int) -> array[int] | None:
    """Per file (groups of *positions* by *starts*, as sort_groups takes them): twice its median
    position, -1 when fewer than *min_seen* runs read it; None: the C path declined. *positions*
    is left as it was (a copy is sorted)."""
    if lib is None or not (_ok(starts, "q") and len(starts) >= 1 and _ok(positions, "i")
                           and isinstance(min_seen, int) and -_INT64_MAX <= min_seen <= _INT64_MAX):
        return None
    files = len(starts) - 1
    ordered, keys = array("i", positions), array("i", bytes(4 * files))
    done = lib.nt_median_keys(_i64(starts), files, ffi.from_buffer("int32_t[]", ordered, require_writable=True),
                              len(ordered), min_seen, ffi.from_buffer("int32_t[]", keys, require_writable=True))
    return keys if done == 0 else None


def order_by_key(keys: array[int]) -> array[int] | None:
    """The indexes of *keys* (an ``i`` array) at or above 0, ordered by key, then index; None: declined."""
    if lib is None or not _ok(keys, "i"):
        return None
    out = array("i", bytes(4 * len(keys)))
    got = lib.nt_order_by_key(_i32(keys), len(keys), ffi.from_buffer("int32_t[]", out, require_writable=True),
                              len(out))
    if got < 0:
        return None
    del out[got:]
    return out


def score_whole(order: array[int], osizes: array[int], ids: array[int], sizes: array[int], times: array[int],
                files: int, bw: float, rtt: float, held: float) -> tuple[int, int, int, float] | None:
    """A run (*ids*, *sizes*, *times*) against a list without ranges (*order* with its prefetch
    sizes *osizes*), as ``evaluate._score_whole`` adds it up: (bytes read, bytes covered, files
    held, stall), or None (the C path declined: an id not below *files*, a sum beyond 64 bits)."""
    n = len(ids)
    if lib is None or not (_ok(order, "i") and _ok(osizes, "q") and len(osizes) == len(order) and _ok(ids, "i")
                           and _ok(sizes, "q") and _ok(times, "q") and len(sizes) == n and len(times) == n):
        return None
    out = ffi.new("struct nt_score *")
    done = lib.nt_score_whole(_i32(order), _i64(osizes), len(order), _i32(ids), _i64(sizes), _i64(times), n, files,
                              bw, rtt, held, out)
    return None if done != 0 else (int(out.read_total), int(out.covered_total), int(out.held_files),
                                   float(out.stall))


class HeldRows:
    """``struct nt_held`` rows of the files two or more runs read, and each file's row (-1: none):
    4 bytes a file and 112 a row."""

    __slots__ = ("rows", "row_of", "c", "_pin")

    def __init__(self, rows: Any, row_of: array[int]) -> None:
        self.rows, self.row_of = rows, row_of
        # Kept while c points into row_of: the buffer stays exported, so row_of cannot be resized
        # (moved) under the pointer (a struct field does not keep its from_buffer alive).
        self._pin = ffi.from_buffer("int32_t[]", row_of)
        self.c = ffi.new("struct nt_held_rows *")
        self.c.rows, self.c.count, self.c.row_of = rows, len(rows), self._pin

    def __len__(self) -> int:
        return len(self.row_of)


def held_rows(files: int, figures: Sequence[tuple[int, Held | None]]) -> HeldRows | None:
    """The rows of *figures* ((fid, figures) for the files two or more runs read; fid below
    *files*); None if a figure does not fit."""
    if lib is None:
        return None
    known = [(fid, held) for fid, held in figures if held is not None]
    rows, row_of = ffi.new("struct nt_held[]", len(known)), array("i", [-1]) * files
    try:
        for r, (fid, held) in enumerate(known):
            seen, t1, t2, vlo, vmid, vhi, u1, u2, wlo, wmid, whi, whole_time, z0, z1 = held
            row = rows[r]
            row.seen, row.t1, row.t2, row.z0, row.z1 = seen, t1, t2, z0, z1
            row.u1 = _INT64_MAX if u1 == math.inf else u1
            row.u2 = _INT64_MAX if u2 == math.inf else u2
            row.vlo, row.vmid, row.vhi, row.wlo, row.wmid, row.whi, row.whole_time = (
                vlo, vmid, vhi, wlo, wmid, whi, whole_time)
            if not 0 <= fid < files:
                return None
            row_of[fid] = r
    except (TypeError, OverflowError):  # not an int of 64 bits where one goes
        return None
    return HeldRows(rows, row_of)


def key_rows(keys: Sequence[tuple[float, float, str, int, int, int]]) -> Any | None:
    """Consensus keys (pos, time, path, fid, seen, size) as ``struct nt_key`` rows (None: one does not fit)."""
    if lib is None:
        return None
    rows = ffi.new("struct nt_key[]", len(keys))
    try:
        for row, (pos, time, _, fid, seen, size) in zip(rows, keys, strict=True):
            row.pos, row.time, row.fid, row.seen, row.size = pos, time, fid, seen, size
    except (TypeError, OverflowError):
        return None
    return (rows, len(keys))


def order_without(held: HeldRows, ids: array[int], sizes: array[int], times: array[int], least: int, base: Any,
                  paths: tuple[bytearray, array[int]]) -> tuple[array[int], array[int], array[int]] | None:
    """The consensus order without a run (its *ids*, *sizes*, *times*): the *base* keys (from
    :func:`key_rows`) of files it did not read and a key for each of its files that *least* or
    more runs read (*held*: :func:`held_rows`), sorted as Python sorts the tuples; the ids, seen
    and sizes, or None (the C path declined)."""
    n = len(ids)
    blob, ends = paths
    if lib is None or not (_ok(ids, "i") and _ok(sizes, "q") and _ok(times, "q") and len(sizes) == n
                           and len(times) == n and _ok(ends, "q") and isinstance(blob, bytearray)):
        return None
    keys, nbase = base
    cap = n + nbase
    out_ids, out_seen, out_sizes = array("i", bytes(4 * cap)), array("q", bytes(8 * cap)), array("q", bytes(8 * cap))
    where = ffi.new("struct nt_paths *")
    with ffi.from_buffer(blob) as text, ffi.from_buffer("int64_t[]", ends) as stops:
        where.blob, where.bloblen, where.ends, where.count = text, len(blob), stops, len(ends)
        got = lib.nt_order_without(held.c, len(held), _i32(ids), _i64(sizes), _i64(times), n, least, keys, nbase,
                                   where, ffi.from_buffer("int32_t[]", out_ids, require_writable=True),
                                   _w64(out_seen), _w64(out_sizes), cap)
    if got < 0:
        return None
    del out_ids[got:], out_seen[got:], out_sizes[got:]
    return out_ids, out_seen, out_sizes
