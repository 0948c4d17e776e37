"""The per-entry loops of the tally and of leave-one-out at C speed (native/tally.c), on arrays.

Each function does what its docstring says and returns True, or returns False having done
nothing its caller may rely on (no native module, arrays of another type or length, an id out of
range): the caller then takes its plain Python path, whose result is the reference. The C side
checks every index against the array it indexes; these wrappers check types and lengths.
"""

from __future__ import annotations

from array import array
from typing import Any, TypeGuard

try:
    from nydus_top._native import ffi, lib
except ImportError:  # pragma: no cover - the module is built at install; without it, the Python paths
    ffi = lib = None

AVAILABLE = lib is not None


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


def scatter(ids: array[int], times: array[int], sizes: array[int] | None, cursor: array[int],
            positions: array[int], times_out: array[int], sizes_out: array[int] | None) -> bool:
    """A counting sort's second pass over one run: entry *i* (its id *fid*) goes to
    ``at = cursor[fid]`` (then one more): ``positions[at] = i``, ``times_out[at] = times[i]`` and,
    with *sizes* and *sizes_out*, ``sizes_out[at] = sizes[i]``."""
    n, total = len(ids), len(positions)
    if lib is None or not (_ok(ids, "i") and _ok(times, "q") and len(times) == n and _ok(cursor, "q")
                           and _ok(positions, "i") and _ok(times_out, "q") and len(times_out) == total):
        return False
    given, out = ffi.NULL, ffi.NULL
    if sizes is not None or sizes_out is not None:
        if not (_ok(sizes, "q") and len(sizes) == n and _ok(sizes_out, "q") and len(sizes_out) == total):
            return False
        given, out = _i64(sizes), _w64(sizes_out)
    done = lib.nt_scatter(_i32(ids), _i64(times), given, n, _w64(cursor), len(cursor),
                          ffi.from_buffer("int32_t[]", positions, require_writable=True), _w64(times_out), out, total)
    return bool(done == 0)


def raise_max(ids: array[int], values: array[int], maxes: array[int]) -> bool:
    """``maxes[fid] = max(maxes[fid], value)`` for each id and value of a run."""
    if lib is None or not (_ok(ids, "i") and _ok(values, "q") and len(values) == len(ids) and _ok(maxes, "q")):
        return False
    return bool(lib.nt_raise_max(_i32(ids), _i64(values), len(ids), _w64(maxes), len(maxes)) == 0)
