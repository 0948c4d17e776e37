"""Pages of image files cached during a trace: what a mapping too short for the page-table sampler
left behind.

The sampler (:mod:`nydus_top.tracing.mapped`) reads the page tables of live processes; a process
that maps a file, touches it and exits between two samples leaves none, and a page fault makes no
event. It does leave the pages it faulted in the page cache of the lower file. So when a range
trace is armed, the cached pages of every regular file of the image's lower directories are noted
(:class:`CacheSnapshot`), and when it ends the pages cached since are one line per file:
``{"cached": path, "ranges": [[start, end], ...]}`` (bytes, clipped to the file's size).

The residency comes from ``cachestat(2)`` (Linux 6.5+) on a file descriptor of the lower file:
counted without reading, faulting or mapping, so nothing of any container's data changes, no lazy
fetch starts, no fanotify group hears of it, and no lock a tenant waits on is held. Halving a
file until each part is all cached or none costs a few calls per run of cached pages.

What it gets wrong, said where its bytes are counted (``page cache: X``): the cache of a lower
file is shared with every container of the image on the node and holds the kernel's readahead,
so new pages may be another container's reads or read ahead around ours (over-counted); a page
already cached when the trace was armed never shows as new (under-counted). The range collector
therefore uses a file's new pages only where some fall outside everything it recorded for the
file (:meth:`nydus_top.tracing.range_tracer.RangeCollector`).

Bounds: MAX_FILES files walked and MAX_CALLS cachestat calls per walk: past one the walk stops
(the files past it are not observed); a file with more than MAX_RUNS runs of cached pages is
left out. One line at the end says what was not observed: ``{"cached": "", "why": text}``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from typing import Any

from nydus_top._native import ffi, lib
from nydus_top.lists.ranges import RangeSet
from nydus_top.text import counted

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_FILES = 1 << 17  # directory entries of the image looked at per walk
MAX_CALLS = 1 << 20  # cachestat calls per walk (about a second of CPU)
MAX_RUNS = 4096  # runs of cached pages kept per file; a file with more is not observed
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def minus(now: RangeSet, before: RangeSet | None) -> RangeSet:
    """The bytes of ``now`` not in ``before``."""
    if not before:
        return now
    out = RangeSet()
    old = list(before)
    i = 0
    for start, end in now:
        while i < len(old) and old[i][1] <= start:
            i += 1
        j = i
        while start < end and j < len(old) and old[j][0] < end:
            if old[j][0] > start:
                out.add(start, old[j][0])
            start = max(start, old[j][1])
            j += 1
        if start < end:
            out.add(start, end)
    return out


class CacheSnapshot:
    """The cached pages of an image's lower files when the trace was armed (one walk now);
    :meth:`lines` walks again and says what was cached since."""

    def __init__(self, lowerdirs: tuple[str, ...]) -> None:
        self._lowerdirs = lowerdirs
        self.why = ""  # why the walk stopped early ("": it did not)
        self._out = ffi.new("unsigned long long[]", 2 * MAX_RUNS)
        self._before: dict[str, RangeSet] = {}
        self._unknown: set[str] = set()  # files whose residency could not be read at the start
        self._fragmented: set[str] = set()  # files left out for more than MAX_RUNS runs (either walk)
        for path, ranges in self._walk():
            if ranges is None:
                self._unknown.add(path)
            elif ranges:
                self._before[path] = ranges

    def lines(self) -> bytes:
        """``cached`` lines of the pages cached since the snapshot (and why it stopped, if it did)."""
        out: list[bytes] = []
        said = self.why
        for path, now in self._walk():
            if now is None or path in self._unknown:
                continue
            new = minus(now, self._before.get(path))
            if new:
                out.append(json.dumps({"cached": path, "ranges": [[s, e] for s, e in new]}).encode() + b"\n")
        why = "; ".join(filter(None, (said or self.why, self._fragmented_why())))
        if why:
            out.append(json.dumps({"cached": "", "why": why}).encode() + b"\n")
        return b"".join(out)

    def _fragmented_why(self) -> str:
        n = len(self._fragmented)
        return f"page cache: {counted(n, 'file')} with more than {MAX_RUNS} runs of cached pages" if n else ""

    def _walk(self) -> Iterator[tuple[str, RangeSet | None]]:
        """(path in the container, its cached bytes or None when unreadable) of each regular file
        the overlay shows from these layers (topmost first: a path an upper layer has hides it)."""
        self.why = ""
        seen: set[str] = set()
        calls = ffi.new("long *", MAX_CALLS)
        for layer in self._lowerdirs:
            try:
                top = os.open(layer, _DIR_FLAGS)
            except OSError:
                continue
            stack = [(top, "")]
            while stack:
                dfd, prefix = stack.pop()
                try:
                    yield from self._dir(dfd, prefix, seen, stack, calls)
                finally:
                    os.close(dfd)
                if self.why:
                    for dfd, _ in stack:
                        os.close(dfd)
                    return

    def _dir(self, dfd: int, prefix: str, seen: set[str], stack: list[tuple[int, str]],
             calls: Any) -> Iterator[tuple[str, RangeSet | None]]:
        with os.scandir(dfd) as entries:
            for entry in entries:
                path = f"{prefix}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    try:
                        stack.append((os.open(entry.name, _DIR_FLAGS, dir_fd=dfd), path))
                    except OSError:
                        pass
                    continue
                if path in seen:
                    continue  # an upper layer's (or its whiteout)
                if len(seen) >= MAX_FILES:
                    self.why = f"page cache: more than {MAX_FILES} files"
                    return
                seen.add(path)
                if entry.is_file(follow_symlinks=False):
                    ranges = self._file(dfd, entry.name, path, calls)
                    if self.why:
                        return
                    yield path, ranges

    def _file(self, dfd: int, name: str, path: str, calls: Any) -> RangeSet | None:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            n = lib.nt_cached_runs(fd, -(-st.st_size // PAGE), PAGE, self._out, MAX_RUNS, calls)
        finally:
            os.close(fd)
        if n == -errno.ENOSYS:
            self.why = "page cache: no cachestat on this kernel (Linux 6.5+)"
        elif n == -errno.E2BIG:
            self.why = f"page cache: more than {MAX_CALLS} cachestat calls"
        elif n == -errno.ENOSPC:
            self._fragmented.add(path)
        if n < 0:
            return None
        out = self._out
        return RangeSet((out[2 * i] * PAGE, min(out[2 * i + 1] * PAGE, st.st_size)) for i in range(n))
