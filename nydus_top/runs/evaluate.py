"""A list's worth before conversion: how much of a recorded start it holds, and what it would cost.

For a list L (paths in prefetch order, sizes, optional byte ranges) and a run R (a recorded start
of the same image: files in first-access order with sizes, first-access times and optional ranges):

* ``file_hit_rate``: files R read that L holds / files R read (1.0 when R read nothing);
* ``byte_hit_rate``: bytes R read (its ranges where known, else whole sizes) that L's prefetch
  covers (L's ranges rounded out to the chunk size where it has them, else whole files) / bytes R
  read (1.0 when R read no bytes);
* ``waste_bytes``: bytes L prefetches that R never read;
* ``predicted_stall_s`` / ``predicted_start_s``: under a link model (:class:`Link`).

The link model, kept simple on purpose:

* the prefetch streams L's entries in list order from t = 0 at ``bandwidth`` (each entry's prefetch
  bytes: its ranges rounded out to ``chunk``, else the whole file); an entry has arrived when its
  last byte has;
* R's accesses happen at their recorded first-access times (``elapsed``, from the container's
  start); an access needs the bytes R read of that file rounded out to ``chunk`` (the whole file
  without ranges). It waits until L's prefetch of the file has arrived, or for an on-demand fetch
  of what it needs (``rtt + bytes / bandwidth``), whichever comes first; bytes L does not prefetch
  are always fetched on demand (``rtt + missing / bandwidth``, alongside the wait for the rest);
* policy ``stream`` (nydusd): the container starts at t = 0 while the prefetch streams;
  policy ``wait`` (the stargz snapshotter): the container's start is held until the whole prefetch
  has arrived, at most ``timeout`` (its ``prefetch_timeout``, 10 s); the prefetch goes on after it;
  the held time counts as stall, and every access happens that much later;
* the stall is the sum of the waits (plus the held start under ``wait``); ``predicted_start_s`` is
  R's recorded duration (its last first access: runs keep no exit time) plus the stall plus the
  start's fixed ``setup_s``.

The runtime's own costs, measured against real cold starts (``bench/predict_check.py``; every one
off by default): ``wire`` bytes cross the link per byte of file (a gzip layer moves its compressed
bytes), and a transfer goes in requests of ``window`` bytes, each paying the rtt ("bandwidth" above
is ``Link.rate``: 1 / (wire * (1 / bandwidth + rtt / window))); each on-demand fetch costs
``request_s`` beyond its rtt (FUSE, the HTTP request, decompression); a held prefetch is also
unpacked at ``unpack_rate`` before the start; ``setup_s`` is the runtime's and the pull's fixed
cost before the first access.

What it leaves out: TCP slow start; on-demand fetches and the prefetch sharing the link (each gets
the whole bandwidth); per-layer or parallel prefetch; later accesses moving later because an earlier one
stalled (accesses stay at their recorded times; the waits are summed as if the start were one
thread); reads after a file's first access (only the first one is recorded); page cache and
metadata fetches. A list entry without a size counts at the largest size any evaluated run gave
for that file, else 0.

Leave-one-out: when L is the consensus of runs, each run is scored against the consensus of the
*other* runs (the same consensus :class:`nydus_top.runs.consensus.Tally` builds), never against a
list it helped make. :class:`Table` holds the runs compactly (path ids in arrays, a run's entries
dropped once added), and the leave-one-out medians come from each file's sorted positions without
counting the runs again.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress, count, islice
from operator import itemgetter, sub
from typing import Any, NamedTuple

from nydus_top.lists.paths import ListColumns, PathTable, columns_of, pick
from nydus_top.lists.ranges import DEFAULT_GRANULARITY, RangeBook, RangeSet
from nydus_top.model.records import Listable
from nydus_top.runs import native_loops
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, _needed
from nydus_top.runs.groups import Grouping, Groups, group

STREAM = "stream"  # nydusd: the prefetch streams while the container runs
WAIT = "wait"  # the stargz snapshotter: the start waits for the whole prefetch (up to its timeout)
POLICIES = (STREAM, WAIT)
DEFAULT_BANDWIDTH = 100e6 / 8  # bytes/s: 100 Mbit/s
DEFAULT_RTT = 0.020  # s
PREFETCH_TIMEOUT = 10.0  # s: the stargz snapshotter's default prefetch_timeout
AUTO_WITHIN = 0.01  # --min-share auto: the smallest list within 1 % of the best mean stall
MAX_SHARES = 20  # thresholds a sweep tries, at most (j/N for N runs, else j/20)
_NONE = -1
_FID, _SEEN, _SIZE = itemgetter(3), itemgetter(4), itemgetter(5)  # of a consensus key (see _order_without_py)
_LARGEST = 1 << 60  # sizes and times beyond this (a hostile list's) count as this: the arrays hold 64 bits


@dataclass(frozen=True, slots=True)
class Link:
    """The link a cold start pulls over, and the runtime's prefetch policy."""

    bandwidth: float = DEFAULT_BANDWIDTH  # bytes per second
    rtt: float = DEFAULT_RTT  # seconds
    chunk: int = DEFAULT_GRANULARITY  # bytes ranges are fetched in (the ranges granularity); 0 = exact
    policy: str = STREAM
    timeout: float = PREFETCH_TIMEOUT  # the longest a WAIT start is held
    # The runtime's measured costs (bench/predict_check.py; the defaults leave them out):
    wire: float = 1.0  # bytes on the link per byte of file (a gzip layer: its size / its files' sizes)
    window: float = 0.0  # bytes a transfer moves per request, each paying the rtt (0: one request)
    request_s: float = 0.0  # each on-demand fetch's cost beyond its rtt (FUSE, HTTP, decompression)
    unpack_rate: float = 0.0  # file bytes per second a held (WAIT) prefetch is unpacked at (0: free)
    setup_s: float = 0.0  # the start's fixed cost before the first access (runtime, pull, mount)

    def __post_init__(self) -> None:
        if not self.bandwidth > 0 or self.rtt < 0 or self.chunk < 0 or self.timeout < 0:
            raise ValueError("bandwidth must be > 0, rtt, chunk and timeout >= 0")
        if not self.wire > 0 or min(self.window, self.request_s, self.unpack_rate, self.setup_s) < 0:
            raise ValueError("wire must be > 0, window, request_s, unpack_rate and setup_s >= 0")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    @property
    def rate(self) -> float:
        """File bytes per second a transfer moves: each wire byte costs 1/bandwidth, plus rtt/window
        where it goes in requests of ``window`` bytes."""
        per_byte = 1 / self.bandwidth + (self.rtt / self.window if self.window > 0 else 0.0)
        return 1 / (per_byte * self.wire)

    @property
    def fetch_s(self) -> float:
        """An on-demand fetch's fixed cost: its round trip and the request's own cost."""
        return self.rtt + self.request_s

    def held_s(self, nbytes: int) -> float:
        """How long a WAIT start is held for a prefetch of *nbytes* (file bytes): fetched, then
        unpacked, at most the timeout."""
        unpack = nbytes / self.unpack_rate if self.unpack_rate > 0 else 0.0
        return min(nbytes / self.rate + unpack, self.timeout)


_BITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_bandwidth(text: str) -> float:
    """``100Mbit``, ``1Gbit``, ``12.5MB`` (bytes), ``1000000`` (bytes) -> bytes per second."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(bit|bps|B|b)?(?:/s)?\s*", text)
    if match is None:
        raise ValueError(f"not a bandwidth: {text!r} (e.g. 100Mbit, 12.5MB)")
    value = float(match.group(1)) * _BITS[match.group(2).lower()]
    unit = match.group(3) or "B"
    value = value / 8 if unit in ("bit", "bps", "b") else value
    if not value > 0:
        raise ValueError(f"bandwidth must be > 0: {text!r}")
    return value


def parse_seconds(text: str) -> float:
    """``20ms``, ``0.5s``, ``500us``, ``0`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|ms|us)?\s*", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 20ms, 0.5s)")
    return float(match.group(1)) * _TIME[match.group(2) or "s"]


# ---------------------------------------------------------------- the runs, compactly


@dataclass(slots=True)
class _Run:
    name: str
    ids: array[int]  # file ids in first-access order (each once)
    sizes: array[int]  # _NONE: unknown
    times: array[int]  # first-access microseconds, _NONE: unknown
    ranges: RangeBook | None
    duration_s: float
    columns: ListColumns  # as added (sizes and times as given): what the runs are grouped by file from


class Table:
    """Runs added one at a time, kept as arrays of path ids (100 runs of 10k files: a few MB)."""

    def __init__(self, paths: PathTable | None = None, grouping: Grouping = group) -> None:
        self.paths = paths if paths is not None else PathTable()  # may be shared with a Tally
        self.grouping = grouping  # groups the runs by file (a SharedGroups: once for a Tally of the same columns)
        self.runs: list[_Run] = []
        self._files: list[_File | None] | None = None
        self._single: dict[int, tuple[int, int, int]] = {}
        self._base: tuple[int, list[tuple[float, float, str, int, int, int]]] | None = None
        self._held: list[_HeldOut | None] | None = None
        self._base_ids: set[int] = set()
        self._rows: tuple[object, Any] | None = None  # (the files() they were made of, held_rows())
        self._base_rows: tuple[object, Any] | None = None  # (the base() they were made of, base_rows())
        self.range_cache: dict[int, _FileRanges | None] = {}  # per file id, filled as leave-one-out asks

    def add(self, name: str, entries: Iterable[Listable], ranges: RangeBook | None = None) -> None:
        """Count one run: *entries* in first-access order (later repeats of a path ignored)."""
        self.add_columns(name, columns_of(entries, self.paths), ranges)

    def add_columns(self, name: str, columns: ListColumns, ranges: RangeBook | None = None) -> None:
        """Count one run held as columns of :attr:`paths` ids (each once, in first-access order);
        arrays that need no change are kept as they are, not copied."""
        sizes, _ = _held(columns.sizes)
        times, last = _held(columns.times)
        self.runs.append(_Run(name, columns.ids, sizes, times, ranges, max(last, 0) / 1e6, columns))
        self._files = self._base = self._held = None
        self.range_cache = {}

    def id_of(self, path: str) -> int:
        """The id of *path*, added when new (a list's files the runs never read)."""
        known = len(self.paths)
        fid = self.paths.id_of(path)
        if fid == known:
            self._files = self._base = self._held = None
        return fid

    def largest_sizes(self) -> dict[int, int]:
        """Per file id: the largest size any run gave."""
        out: dict[int, int] = {}
        for run in self.runs:
            for fid, size in zip(run.ids, run.sizes, strict=True):
                if size > out.get(fid, _NONE):
                    out[fid] = size
        return out

    def base(self, min_seen: int) -> list[tuple[float, float, str, int, int, int]]:
        """Every file at least *min_seen* runs read, as the consensus of all runs orders it, with
        its largest size (kept for the last *min_seen* asked)."""
        if self._base is None or self._base[0] != min_seen:
            paths = self.paths
            keys = [(f.whole_pos, f.whole_time, paths[fid], fid, len(f.positions), f.sizes[0] if f.sizes else 0)
                    for fid, f in enumerate(self.files()) if f is not None and len(f.positions) >= min_seen]
            if min_seen <= 1:
                keys += [(float(pos), math.inf if time == _NONE else float(time), paths[fid], fid, 1,
                          0 if size == _NONE else size) for fid, (pos, time, size) in self._single.items()]
            keys.sort()
            self._base = (min_seen, keys)
            self._base_ids = set(map(_FID, keys))
        return self._base[1]

    def base_ids(self, min_seen: int) -> set[int]:
        """The file ids of :meth:`base`."""
        self.base(min_seen)
        return self._base_ids

    def held_out(self) -> list[_HeldOut | None]:
        """Per file id, what leaving one run out can make of its medians and largest size
        (None: read by one run only). Built once, after the last add."""
        if self._held is None:
            self._held = [None if f is None else _held_out(f, path)
                          for f, path in zip(self.files(), self.paths, strict=True)]
        return self._held

    def held_rows(self) -> native_loops.HeldRows | None:
        """:meth:`held_out` (without paths) as the C rows of native_loops.order_without, per file
        id; None when they cannot be made (built once, after the last add)."""
        files = self.files()
        if self._rows is None or self._rows[0] is not files:
            figures = [(fid, _held_figures(f)) for fid, f in enumerate(files) if f is not None]
            self._rows = (files, native_loops.held_rows(len(files), figures))
        return self._rows[1]

    def base_rows(self, min_seen: int) -> Any | None:
        """:meth:`base` as C keys for native_loops.order_without (None: they cannot be made)."""
        base = self.base(min_seen)
        if self._base_rows is None or self._base_rows[0] is not base:
            self._base_rows = (base, native_loops.key_rows(base))
        return self._base_rows[1]

    def files(self) -> list[_File | None]:
        """Per file id, its figures over the runs when two or more read it (built once, after the
        last add; :meth:`seen` counts the others)."""
        if self._files is None:
            self._files, self._single = _index(self.grouping([run.columns for run in self.runs], len(self.paths)))
        return self._files

    def seen(self, least: int) -> int:
        """Files at least *least* (>= 1) runs read."""
        files = self.files()
        return sum(1 for f in files if f is not None and len(f.positions) >= least) + (
            len(self._single) if least <= 1 else 0)


def _held(values: array[int]) -> tuple[array[int], int]:
    """*values* with negative ones _NONE and those beyond _LARGEST _LARGEST (a hostile list's
    numbers are unbounded): *values* itself when it has none of them; and their largest (0: none)."""
    lo, hi = native_loops.bounds(values) or (min(values, default=0), max(values, default=0))
    if lo >= _NONE and hi <= _LARGEST:
        return values, hi
    held = array("q", [_NONE if v < 0 else min(v, _LARGEST) for v in values])
    return held, max(held)


@dataclass(frozen=True, slots=True)
class Score:
    """One run against one list (the JSON names of issue 21)."""

    run: str
    file_hit_rate: float
    byte_hit_rate: float
    waste_bytes: int
    predicted_stall_s: float
    predicted_start_s: float
    files: int  # files the run read
    read_bytes: int  # bytes the run read
    list_files: int  # files of the list it was scored against
    prefetch_bytes: int  # bytes that list prefetches
    against: str = "list"  # "list": the list given; "others": the consensus of the other runs

    def as_json(self) -> dict[str, Any]:
        return {"kind": "run", "run": self.run, "against": self.against,
                "file_hit_rate": self.file_hit_rate, "byte_hit_rate": self.byte_hit_rate,
                "waste_bytes": self.waste_bytes, "predicted_stall_s": self.predicted_stall_s,
                "predicted_start_s": self.predicted_start_s, "files": self.files, "read_bytes": self.read_bytes,
                "list_files": self.list_files, "prefetch_bytes": self.prefetch_bytes}


@dataclass(frozen=True, slots=True)
class Summary:
    """The mean over the scored runs (every field the plain mean of the runs' values)."""

    runs: int
    file_hit_rate: float
    byte_hit_rate: float
    waste_bytes: float
    predicted_stall_s: float
    predicted_start_s: float
    list_files: float
    prefetch_bytes: float

    def as_json(self) -> dict[str, Any]:
        return {"kind": "mean", "runs": self.runs, "file_hit_rate": self.file_hit_rate,
                "byte_hit_rate": self.byte_hit_rate, "waste_bytes": self.waste_bytes,
                "predicted_stall_s": self.predicted_stall_s, "predicted_start_s": self.predicted_start_s,
                "list_files": self.list_files, "prefetch_bytes": self.prefetch_bytes}


def mean(scores: Sequence[Score]) -> Summary:
    """The mean of *scores* (zeros for none)."""
    n = len(scores)
    if n == 0:
        return Summary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def avg(name: str) -> float:
        return sum(float(getattr(s, name)) for s in scores) / n

    return Summary(n, avg("file_hit_rate"), avg("byte_hit_rate"), avg("waste_bytes"), avg("predicted_stall_s"),
                   avg("predicted_start_s"), avg("list_files"), avg("prefetch_bytes"))


@dataclass(frozen=True, slots=True)
class Step:
    """One file of a run in a waterfall: when it was first read, what it needed, when the prefetch
    delivered it (None: the list does not hold it) and how long the access waited."""

    path: str
    access_s: float  # when the access happened (under WAIT: after the held start)
    read_bytes: int
    arrival_s: float | None
    wait_s: float
    on_demand: bool  # the wait was (or included) an on-demand fetch


@dataclass(slots=True)
class _ListView:
    """A list as file ids in prefetch order with each entry's prefetch set (None: whole file)."""

    order: list[int]
    sizes: dict[int, int]  # prefetch size of each entry's whole file (0 unknown)
    ranges: dict[int, RangeSet] = field(default_factory=dict)  # rounded prefetch ranges, where partial
    columns: tuple[array[int], array[int]] | None = None  # order and each one's size as arrays, when at hand


def _od(link: Link, nbytes: int) -> float:
    return 0.0 if nbytes <= 0 else link.fetch_s + nbytes / link.rate


def _rounded_whole(ranges: RangeSet, chunk: int, size: int) -> RangeSet | None:
    """*ranges* rounded out to *chunk*, clipped to *size*; None when that covers the file."""
    out = ranges.rounded(chunk, size if size >= 0 else None)
    return None if size >= 0 and out.covers(size) else out


def _intersect(a: RangeSet, b: RangeSet) -> int:
    """Bytes in both *a* and *b* (a merge of the two sorted interval lists)."""
    xs, ys = list(a), list(b)
    i = j = total = 0
    while i < len(xs) and j < len(ys):
        (s1, e1), (s2, e2) = xs[i], ys[j]
        total += max(0, min(e1, e2) - max(s1, s2))
        if e1 <= e2:
            i += 1
        else:
            j += 1
    return total


def _upto(size: int) -> RangeSet:
    """The first *size* bytes of a file as ranges. A list may say any size (hostile input); a
    range set ends below 2**64, and no range read back ends past _LARGEST, so a larger size
    counts as that."""
    return RangeSet([(0, min(size, _LARGEST))])


def _clip(ranges: RangeSet, size: int) -> RangeSet:
    return ranges.rounded(0, size) if size >= 0 else ranges


def score(table: Table, k: int, view: _ListView, link: Link, *, against: str = "list",
          steps: list[Step] | None = None) -> Score:
    """Run *k* of *table* against the list *view* (see the module's model). With *steps*, the
    waterfall's rows are appended to it."""
    run = table.runs[k]
    order, lsizes, lranges = view.order, view.sizes, view.ranges
    if run.ranges is None and not lranges and steps is None:
        fast = _score_native(table, run, view, link, against)
        if fast is not None:
            return fast
    pf = [_prefetch_size(lranges.get(f), lsizes[f]) for f in order] if lranges else list(map(lsizes.__getitem__, order))
    arrive = dict(zip(order, accumulate(pf), strict=True))
    total = sum(pf)
    bw, chunk = link.rate, link.chunk
    held = link.held_s(total) if link.policy == WAIT else 0.0
    rbook = run.ranges
    if rbook is None and not lranges and steps is None:
        return _score_whole(run, arrive, lsizes, total, held, link, len(order), against)
    read_total = covered_total = held_files = 0
    stall = held
    paths = table.paths
    for fid, size, time in zip(run.ids, run.sizes, run.times, strict=True):
        rset = rbook.get(paths[fid]) if rbook is not None and paths[fid] in rbook else None
        rsize = max(size, 0)
        read = _clip(rset, size).bytes if rset is not None else rsize
        needed = _rounded_whole(rset, chunk, size) if rset is not None else None
        need = needed.bytes if needed is not None else rsize
        end = arrive.get(fid)
        if end is None:
            covered, missing, prefetch_wait = 0, need, 0.0
        else:
            held_files += 1
            part = lranges.get(fid)
            lsize = lsizes[fid]
            if part is None:  # the whole file, up to the list's size
                covered = (_intersect(_clip(rset, size), _upto(lsize)) if rset is not None
                           else min(lsize, rsize))
                missing = (need - _intersect(needed, _upto(lsize)) if needed is not None
                           else max(0, rsize - lsize))
            else:
                covered = _intersect(_clip(rset, size) if rset is not None else _upto(rsize), part)
                missing = need - _intersect(needed if needed is not None else _upto(rsize), part)
            at = held + max(time, 0) / 1e6
            prefetch_wait = max(0.0, end / bw - at)
        wait = min(_od(link, need), max(prefetch_wait, _od(link, missing)))
        stall += wait
        read_total += read
        covered_total += covered
        if steps is not None:
            steps.append(Step(paths[fid], held + max(time, 0) / 1e6, read,
                              None if end is None else end / bw, wait,
                              wait > 0 and (end is None or missing > 0 or wait < prefetch_wait)))
    files = len(run.ids)
    return Score(run.name, held_files / files if files else 1.0,
                 covered_total / read_total if read_total else 1.0, total - covered_total, stall,
                 run.duration_s + stall + link.setup_s, files, read_total, len(order), total, against)


def _score_whole(run: _Run, arrive: dict[int, int], lsizes: dict[int, int], total: int, held: float, link: Link,
                 list_files: int, against: str) -> Score:
    """:func:`score` where neither the run nor the list has ranges (the common case), faster."""
    bw, rtt = link.rate, link.fetch_s
    read_total = covered_total = held_files = 0
    stall = held
    get = arrive.get
    for fid, size, time in zip(run.ids, run.sizes, run.times, strict=True):
        rsize = size if size > 0 else 0
        read_total += rsize
        end = get(fid)
        if end is None:
            if rsize:
                stall += rtt + rsize / bw
            continue
        held_files += 1
        lsize = lsizes[fid]
        covered = lsize if lsize < rsize else rsize
        covered_total += covered
        prefetch_wait = end / bw - held - (time if time > 0 else 0) / 1e6
        if covered < rsize:  # the rest on demand, alongside
            missing = rtt + (rsize - covered) / bw
            prefetch_wait = missing if missing > prefetch_wait else prefetch_wait
        if prefetch_wait > 0 and rsize:
            whole = rtt + rsize / bw
            stall += whole if whole < prefetch_wait else prefetch_wait
    files = len(run.ids)
    return Score(run.name, held_files / files if files else 1.0,
                 covered_total / read_total if read_total else 1.0, total - covered_total, stall,
                 run.duration_s + stall + link.setup_s, files, read_total, list_files, total, against)


def _score_native(table: Table, run: _Run, view: _ListView, link: Link, against: str) -> Score | None:
    """:func:`_score_whole` with its loop in C (native/loo.c); None when the C path declines."""
    order = view.order
    if view.columns is not None and len(view.sizes) == len(order):  # each file once: its size as the dict has it
        ids, osizes = view.columns
    else:
        try:
            ids = array("i", order)
            osizes = array("q", map(view.sizes.__getitem__, order))
        except OverflowError:  # a list's size beyond 64 bits: Python's integers
            return None
    total = sum(osizes)
    held = link.held_s(total) if link.policy == WAIT else 0.0
    if type(held) is int:  # an int timeout: Python's stall stays an int where nothing adds to it
        return None
    sums = native_loops.score_whole(ids, osizes, run.ids, run.sizes, run.times, len(table.paths), link.rate,
                                    link.fetch_s, held)
    if sums is None:
        return None
    read_total, covered_total, held_files, stall = sums
    files = len(run.ids)
    return Score(run.name, held_files / files if files else 1.0,
                 covered_total / read_total if read_total else 1.0, total - covered_total, stall,
                 run.duration_s + stall + link.setup_s, files, read_total, len(order), total, against)


def _prefetch_size(ranges: RangeSet | None, size: int) -> int:
    """Bytes a prefetch entry moves: its rounded ranges, else its whole size."""
    return size if ranges is None else ranges.bytes


# ---------------------------------------------------------------- a given list


def list_view(table: Table, entries: Iterable[Listable], ranges: RangeBook | None, chunk: int) -> _ListView:
    """*entries* (a list, in its order) as a view over *table*'s file ids: sizes unknown to the
    list are the largest any run gave, else 0; ranges rounded out to *chunk*."""
    rows = list(entries)
    largest = table.largest_sizes() if any(entry.size is None for entry in rows) else {}
    order: list[int] = []
    sizes: dict[int, int] = {}
    parts: dict[int, RangeSet] = {}
    for entry in rows:
        fid = table.id_of(entry.path)
        if fid in sizes:
            continue
        size = min(entry.size, _LARGEST) if entry.size is not None else max(largest.get(fid, 0), 0)
        order.append(fid)
        sizes[fid] = size
        rset = ranges.get(entry.path) if ranges is not None and entry.path in ranges else None
        if rset is not None:
            part = _rounded_whole(rset, chunk, size)
            if part is not None:
                parts[fid] = part
    return _ListView(order, sizes, parts)


def score_list(table: Table, entries: Iterable[Listable], ranges: RangeBook | None, link: Link) -> list[Score]:
    """Every run of *table* against one list (its *entries* in order, its *ranges* or None)."""
    view = list_view(table, entries, ranges, link.chunk)
    return [score(table, k, view, link) for k in range(len(table.runs))]


def evaluate(runs: Iterable[Any], entries: Iterable[Listable], ranges: RangeBook | None,
             link: Link) -> tuple[list[Score], Summary]:
    """For a bench or a caller holding runs: every run (anything with ``name``, ``entries`` and
    ``ranges``, e.g. :class:`nydus_top.runs.runset.Run`) against the list; the scores and their mean."""
    table = Table()
    for run in runs:
        table.add(run.name, run.entries, getattr(run, "ranges", None))
    scores = score_list(table, entries, ranges, link)
    return scores, mean(scores)


def waterfall(table: Table, k: int, entries: Iterable[Listable], ranges: RangeBook | None,
              link: Link) -> tuple[list[Step], Score]:
    """Run *k*'s files in first-access order against a list: the waterfall's rows and the score."""
    steps: list[Step] = []
    view = list_view(table, entries, ranges, link.chunk)
    return steps, score(table, k, view, link, steps=steps)


# ---------------------------------------------------------------- leave-one-out


class _File(NamedTuple):
    """One file over the runs: its sorted positions, known times and known sizes (largest first)."""

    positions: Sequence[int]
    times: Sequence[int]
    sizes: Sequence[int]
    whole_pos: float
    whole_time: float


def _index(groups: Groups) -> tuple[list[_File | None], dict[int, tuple[int, int, int]]]:
    """Per file id its figures over the runs that read it twice or more (None for the others), and
    the files one run read: (position, time, size), from the runs grouped by file. Times and
    sizes are held as the table holds a run's (:func:`_held`), which keeps each group sorted (a
    larger value is never held below a smaller one)."""
    starts, positions = groups.starts, groups.positions
    times, _ = _held(groups.times)
    sizes, _ = _held(groups.sizes)
    n = len(starts) - 1
    seen = list(map(sub, islice(starts, 1, None), starts))  # runs that read each file
    ones = list(compress(range(n), map((1).__eq__, seen)))  # files one run read: (position, time, size)
    at = pick(ones, starts)
    single = dict(zip(ones, zip(pick(at, positions), pick(at, times), pick(at, sizes), strict=True), strict=True))
    out: list[_File | None] = [None] * n
    for fid in compress(range(n), map((1).__lt__, seen)):
        a, b = starts[fid], starts[fid + 1]
        p = positions[a:b]  # each group sorted already
        t = _known(times[a:b])
        z = _known(sizes[a:b])
        z.reverse()
        out[fid] = _File(p, t, z, _median(p), _median(t))
    return out, single


def _known(ordered: array[int]) -> array[int]:
    """Sorted *ordered* without _NONE (the smallest a run holds: see _held)."""
    return ordered[bisect_right(ordered, _NONE):]


# (runs that read it, then for positions and for times: two thresholds and the median without a
# value at or below the first, between them, above the second; the median time over every run;
# the largest and second largest size; the path)
_HeldOut = tuple[int, int, int, float, float, float, float, float, float, float, float, float, int, int, str]


def _without(values: Sequence[int]) -> tuple[float, float, float, float, float]:
    """(t1, t2, low, middle, high): the median of sorted *values* with one value v taken out is
    *high* when v > t2, *middle* when t1 < v <= t2, else *low* (any copy of an equal value may go;
    which values stay in the middle depends only on where v sits)."""
    n = len(values)
    if n <= 1:
        return math.inf, math.inf, math.inf, math.inf, math.inf
    mid = (n - 1) // 2
    if n % 2 == 0:  # n - 1 left: the middle one
        return values[mid], values[mid], float(values[mid + 1]), float(values[mid + 1]), float(values[mid])
    a, b, c = values[mid - 1], values[mid], values[mid + 1]
    return a, b, (b + c) / 2, (a + c) / 2, (a + b) / 2


def _held_out(f: _File, path: str) -> _HeldOut | None:
    figures = _held_figures(f)
    return None if figures is None else (*figures, path)


def _held_figures(f: _File) -> native_loops.Held | None:
    """:func:`_held_out` without the path."""
    seen = len(f.positions)
    if seen <= 1:
        return None
    z = f.sizes
    z0 = z[0] if z else 0
    z1 = z[1] if len(z) > 1 else z0
    t1, t2, vlo, vmid, vhi = _without(f.positions)
    u1, u2, wlo, wmid, whi = _without(f.times)
    return (seen, int(t1), int(t2), vlo, vmid, vhi, u1, u2, wlo, wmid, whi, f.whole_time, z0, z1)


def _median(values: Sequence[int]) -> float:
    n = len(values)
    if n == 0:
        return math.inf
    mid = n // 2
    return float(values[mid]) if n % 2 else (values[mid - 1] + values[mid]) / 2


class _Order(NamedTuple):
    """Files in the order of a consensus: their ids, the runs that read each, their largest sizes."""

    ids: array[int]
    seen: array[int]
    sizes: array[int]


def _order_without(table: Table, k: int, min_seen: int = 1, mine_seen: int = 0) -> _Order:
    """The files the runs other than *k* read (those at least *min_seen* runs of all read; of the
    ones *k* read, those at least *mine_seen* of the others read), in the order of their consensus
    (median position, median time, path): sorted in C (native/loo.c), else by
    :func:`_order_without_py`."""
    if len(table.runs) > 1:
        rows, base = table.held_rows(), table.base_rows(min_seen)
        if rows is not None and base is not None:
            run = table.runs[k]
            got = native_loops.order_without(rows, run.ids, run.sizes, run.times, max(min_seen, mine_seen + 1),
                                             base, table.paths.buffers())
            if got is not None:
                return _Order(*got)
    keys = _order_without_py(table, k, min_seen, mine_seen)
    return _Order(array("i", map(_FID, keys)), array("q", map(_SEEN, keys)), array("q", map(_SIZE, keys)))


def _order_without_py(table: Table, k: int, min_seen: int = 1, mine_seen: int = 0,
                      ) -> list[tuple[float, float, str, int, int, int]]:
    """:func:`_order_without` in plain Python, as keys (median position, median time, path, file
    id, runs that read it, its largest size): the reference the C path is tested against."""
    if len(table.runs) == 1:  # every file the others read: none
        return []
    held = table.held_out()
    run = table.runs[k]
    base = table.base(min_seen)
    if len(table.base_ids(min_seen).intersection(run.ids)) == len(base):  # every file of base: k read it
        keys = []
    else:
        mine = set(run.ids)
        keys = [key for key in base if key[3] not in mine]
    append = keys.append
    least = max(min_seen, mine_seen + 1)
    for position, fid, size, time in zip(count(), run.ids, run.sizes, run.times):  # arrays of one length
        h = held[fid]
        if h is None:
            continue
        seen, t1, t2, vlo, vmid, vhi, u1, u2, wlo, wmid, whi, whole_time, z0, z1, path = h
        if seen < least:
            continue
        append((vhi if position > t2 else vmid if position > t1 else vlo,
                whole_time if time == _NONE else whi if time > u2 else wmid if time > u1 else wlo,
                path, fid, seen - 1, z1 if size >= z0 else z0))
    keys.sort()
    return keys


@dataclass(slots=True)
class _FileRanges:
    """One file's ranges over the runs that have data for it, and their union (None: whole)."""

    by_run: dict[int, RangeSet | None]
    union: RangeSet | None
    wholes: int  # runs that read it whole
    same: dict[tuple[tuple[int, int], ...], int]  # how many runs read exactly these ranges


def _file_ranges(table: Table, fid: int, cache: dict[int, _FileRanges | None]) -> _FileRanges | None:
    if fid in cache:
        return cache[fid]
    path = table.paths[fid]
    by_run = {j: run.ranges.get(path) for j, run in enumerate(table.runs)
              if run.ranges is not None and path in run.ranges}
    found = None
    if by_run:
        wholes = sum(1 for rset in by_run.values() if rset is None)
        same: dict[tuple[tuple[int, int], ...], int] = {}
        union = RangeSet()
        for rset in by_run.values():
            if rset is not None:
                key = tuple(rset)
                same[key] = same.get(key, 0) + 1
                union.update(rset)
        found = _FileRanges(by_run, None if wholes else union, wholes, same)
    cache[fid] = found
    return found


def _ranges_without(table: Table, k: int, fid: int, cache: dict[int, _FileRanges | None]) -> RangeSet | None:
    """The union of the other runs' ranges of a file (None: whole, or no other run has data), as
    RangeBook.merge of their books gives it. The union of every run serves whenever leaving run
    *k* out cannot change it (no data from k, or another run read exactly the same)."""
    ranges = _file_ranges(table, fid, cache)
    if ranges is None or k not in ranges.by_run:
        return None if ranges is None else ranges.union
    mine = ranges.by_run[k]
    if len(ranges.by_run) == 1:
        return None
    if mine is None:
        if ranges.wholes >= 2:
            return None
    elif ranges.wholes or ranges.same[tuple(mine)] >= 2:
        return ranges.union
    union = RangeSet()
    for j, rset in ranges.by_run.items():
        if j != k:
            if rset is None:
                return None
            union.update(rset)
    return union


def _view_without(table: Table, k: int, order: _Order, needed: int, chunk: int, *,
                  all_kept: bool = False) -> _ListView:
    """The files of *order* at least *needed* of the other runs read (*all_kept*: all of them) as a
    list without run *k*, with the ranges of the other runs."""
    if all_kept:
        kept, chosen = order.ids, order.sizes
    else:
        keep = list(map(needed.__le__, order.seen))
        kept, chosen = array("i", compress(order.ids, keep)), array("q", compress(order.sizes, keep))
    ids = kept.tolist()
    sizes = dict(zip(ids, chosen, strict=True))
    parts: dict[int, RangeSet] = {}
    if any(run.ranges is not None for j, run in enumerate(table.runs) if j != k):
        for fid in ids:
            rset = _ranges_without(table, k, fid, table.range_cache)
            if rset is not None:
                part = _rounded_whole(rset, chunk, sizes[fid])
                if part is not None:
                    parts[fid] = part
    return _ListView(ids, sizes, parts, (kept, chosen))


def leave_one_out(table: Table, link: Link, min_share: float = DEFAULT_MIN_SHARE) -> list[Score]:
    """Each run of *table* against the consensus (at *min_share*) of the other runs."""
    needed = _needed(min_share, len(table.runs) - 1) if len(table.runs) > 1 else 1
    return [score(table, k, _view_without(table, k, _order_without(table, k, needed, needed), needed, link.chunk,
                                          all_kept=True), link, against="others")
            for k in range(len(table.runs))]


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True, slots=True)
class Point:
    """One share threshold: the leave-one-out mean, and the files the consensus of every run keeps."""

    share: float
    list_files: int
    mean: Summary


def shares(runs: int) -> list[float]:
    """The thresholds a sweep tries: j/N for N runs (every distinct list), else j/MAX_SHARES."""
    steps = runs if 1 <= runs <= MAX_SHARES else MAX_SHARES
    return [j / steps for j in range(1, steps + 1)]


class Cancelled(Exception):
    """A sweep stopped because its caller asked (see :func:`sweep`'s *stop*)."""


def sweep(table: Table, link: Link, thresholds: Sequence[float] | None = None,
          stop: Callable[[], bool] | None = None) -> list[Point]:
    """The leave-one-out mean at each threshold (default :func:`shares`), lowest share first.
    *stop* is asked before each held-out run: True raises Cancelled (an app leaving does not wait
    for a long sweep)."""
    n = len(table.runs)
    chosen = sorted(thresholds) if thresholds is not None else shares(n)
    least = min((_needed(share, n - 1) if n > 1 else 1 for share in chosen), default=1)

    def check() -> None:
        if stop is not None and stop():
            raise Cancelled

    needs = [_needed(share, n - 1) if n > 1 else 1 for share in chosen]
    scores: list[list[Score]] = [[] for _ in chosen]
    for k in range(n):  # one held-out run's order at a time: memory holds one
        check()
        order = _order_without(table, k, least)
        for needed, at in zip(needs, scores, strict=True):
            at.append(score(table, k, _view_without(table, k, order, needed, link.chunk), link, against="others"))
    points = []
    for share, at in zip(chosen, scores, strict=True):
        keep = _needed(share, n) if n else 1
        points.append(Point(share, table.seen(keep), mean(at)))
    return points


def auto_share(points: Sequence[Point]) -> float:
    """The share whose list (of every run) is smallest among those whose mean predicted stall is
    within AUTO_WITHIN of the best; ties go to the higher share. DEFAULT_MIN_SHARE without points."""
    if not points:
        return DEFAULT_MIN_SHARE
    best = min(p.mean.predicted_stall_s for p in points)
    limit = best * (1 + AUTO_WITHIN) + 1e-12
    good = [p for p in points if p.mean.predicted_stall_s <= limit]
    return min(good, key=lambda p: (p.list_files, -p.share)).share


def held_out_waterfall(table: Table, k: int, link: Link, min_share: float = DEFAULT_MIN_SHARE,
                       ) -> tuple[list[Step], Score]:
    """Run *k*'s waterfall against the consensus (at *min_share*) of the other runs."""
    needed = _needed(min_share, len(table.runs) - 1) if len(table.runs) > 1 else 1
    steps: list[Step] = []
    view = _view_without(table, k, _order_without(table, k, needed, needed), needed, link.chunk, all_kept=True)
    return steps, score(table, k, view, link, against="others", steps=steps)


def knee_plot(points: Sequence[Point], current: float) -> list[str]:
    """Three text rows (hit rate, list size, predicted stall against the share threshold) and an
    axis row: one column per point, scaled between each series' smallest and largest value; ``^``
    marks the point of *current*."""
    marks = "▁▂▃▄▅▆▇█"

    def spark(values: list[float]) -> str:
        low, high = min(values, default=0.0), max(values, default=0.0)
        span = high - low
        return "".join(marks[0 if span <= 0 else round((v - low) / span * (len(marks) - 1))] for v in values)

    rows = [("hit", [p.mean.file_hit_rate for p in points]), ("files", [float(p.list_files) for p in points]),
            ("stall", [p.mean.predicted_stall_s for p in points])]
    out = [f"{name:<6}{spark(values)}" for name, values in rows]
    near = min(range(len(points)), key=lambda i: abs(points[i].share - current), default=-1)
    out.append(" " * 6 + "".join("^" if i == near else " " for i in range(len(points))))
    return out
