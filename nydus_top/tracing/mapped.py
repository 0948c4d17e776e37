"""Pages of image files the container has mapped: its processes' page tables, sampled.

Page faults through overlayfs make no pre-access event, so the range tracer
(:mod:`nydus_top.tracing.range_session`) cannot see a file's mapped pages. This module reads them
where the kernel keeps them: every ``SAMPLE_MS`` (``STARTUP_SAMPLE_MS`` at first) and once more
when the trace ends it lists the processes in the traced mount namespace, reads each one's
``/proc/PID/maps`` and, for the mappings
of files on the container's root overlay, the present bits of ``/proc/PID/pagemap``. A present page
at address ``a`` of a mapping at ``start`` with file offset ``pgoff`` is the file's page
``pgoff + (a - start)``: the file's data was read there (a fault, or the kernel's fault-around of
up to 64 KiB of pages already cached next to one).

Why page tables and not page-cache residency: the cache of an image's lower file is shared with
every container of that image on the node, and pages cached before the trace began would never
show as new, so a residency diff misses warm pages and counts other containers' reads. Page tables
are the container's own. Reading them takes no lock a tenant waits on for long (the target's
mmap lock, shared, per read) and changes nothing.

What it cannot see: the pages of a process that mapped, touched and exited between two samples
(its page tables are gone; the range tracer finds them in the page cache instead, see
``RangeCollector._cached_pages``), and pages the kernel unmapped before a sample (reclaim). Files a process
maps executable (programs, libraries) are skipped: the range tracer counts ELF files whole.

Lines (JSON, one per new range): ``{"mapped": path, "off": n, "len": n}``; a file it gave up on:
``{"unobserved": path, "why": text}``.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import time

from nydus_top.lists.ranges import RangeSet

SAMPLE_MS = 100  # page tables are read this often while the trace runs
STARTUP_SAMPLE_MS, STARTUP_S = 20, 5.0  # and this often in its first seconds (short-lived processes)
FINISH_S = 2.0  # the trace's end waits this long at most for the last sample
RECHECK_SAMPLES = 10  # a process outside the namespace is checked again after this many samples
NICE_SAMPLE = 0  # the sampler runs like any process on the node (the session's answers run at -10)
PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_FILES = 4096  # mapped files followed per trace; past it a file is "unobserved" (counts whole)
MAX_RANGES = 4096  # ranges kept per file; past it the file is "unobserved" (counts whole)
MAX_SAMPLE_PAGES = 1 << 22  # page table entries read per sample (16 GiB of mappings at 4 KiB)
CHUNK_PAGES = 1 << 14  # pagemap entries per read (128 KiB)
_PRESENT_BYTE = bytes(0x31 if b >= 0x80 else 0x30 for b in range(256))  # a pagemap entry's last byte

# start-end perms offset major:minor inode path (the path may be absent)
_MAPS = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) ([0-9]+) +(/.*)?$")


def _page_runs(entries: bytes, first: int) -> list[tuple[int, int]]:
    """[(first_page, end_page)) runs of present entries in a pagemap read starting at page ``first``.

    The present bit is the top bit of each little-endian entry: its last byte is >= 0x80."""
    flags = entries[7::8].translate(_PRESENT_BYTE)  # b"1" present, b"0" not, one byte a page
    runs: list[tuple[int, int]] = []
    i = flags.find(b"1")
    while i >= 0:
        j = flags.find(b"0", i)
        if j < 0:
            j = len(flags)
        runs.append((first + i, first + j))
        i = flags.find(b"1", j)
    return runs


def _unescape(path: bytes) -> str:
    """A path as maps prints it (``\\012`` for a newline) -> str (surrogateescape)."""
    return os.fsdecode(path.replace(b"\\012", b"\n"))


class MappedSampler:
    """Reads the mapped pages of one mount namespace's processes. Owns ``procfd`` (host /proc)."""

    def __init__(self, procfd: int, ns: tuple[int, int], root_dev: int) -> None:
        self._procfd = procfd
        self._ns = ns
        self._root_dev = root_dev  # st_dev of the container's root overlay: image files are there
        self._files: dict[str, RangeSet] = {}  # path -> pages seen mapped (bytes)
        self._skip: dict[tuple[int, int], str] = {}  # (dev, ino) of the map's file -> why skipped
        self._gave_up: set[str] = set()
        self._theirs: dict[int, int] = {}  # pid outside the namespace -> sample it is checked again
        self.samples = 0

    @property
    def procfd(self) -> int:
        return self._procfd

    def close(self) -> None:
        os.close(self._procfd)

    def _ours(self, pid: int) -> bool:
        try:
            st = os.stat(f"{pid}/ns/mnt", dir_fd=self._procfd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ns

    def sample(self) -> list[bytes]:
        """Read every process of the namespace once; the lines of what is new."""
        lines: list[bytes] = []
        budget = [MAX_SAMPLE_PAGES]
        pids = {int(name) for name in os.listdir(self._procfd) if name.isdigit()}
        self._theirs = {pid: due for pid, due in self._theirs.items() if pid in pids}
        for pid in pids:
            if self._theirs.get(pid, 0) > self.samples or pid == os.getpid():
                continue
            if self._ours(pid):
                self._sample_pid(pid, lines, budget)
            else:  # looked at again now and then: a process may join the namespace (setns)
                self._theirs[pid] = self.samples + RECHECK_SAMPLES
        self.samples += 1
        return lines

    def _sample_pid(self, pid: int, lines: list[bytes], budget: list[int]) -> None:
        try:
            with open(f"{pid}/maps", "rb", opener=self._at) as f:
                maps = f.read()
            pm = os.open(f"{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._procfd)
        except OSError:
            return  # gone, or a kernel thread
        try:
            found = [m for m in map(_MAPS.match, maps.splitlines()) if m is not None and m[8] is not None]
            code = {m.group(5, 6, 7) for m in found if m[3][2:3] == b"x"}
            for m in found:
                if m.group(5, 6, 7) not in code:  # an executable or library: the range tracer counts it whole
                    self._sample_map(pid, pm, m, lines, budget)
        finally:
            os.close(pm)

    def _at(self, path: str, flags: int) -> int:
        return os.open(path, flags | os.O_CLOEXEC, dir_fd=self._procfd)

    def _image_file(self, pid: int, start: int, end: int, key: tuple[int, int]) -> bool:
        """Is this mapping's file on the container's root overlay (and still has a name)?"""
        why = self._skip.get(key)
        if why is None and key[0] != self._root_dev:
            why = self._skip[key] = "elsewhere"  # a volume, the host's, ... (maps names the overlay's dev)
        if why is None:
            try:
                fd = os.open(f"{pid}/map_files/{start:x}-{end:x}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=self._procfd)
            except OSError:
                return False  # unmapped meanwhile: try again next sample
            try:  # never read: a read would be a pre-access event, and a fetch on a lazy image
                why = "deleted" if os.fstat(fd).st_nlink == 0 else ""  # maps says "<path> (deleted)"
            except OSError:
                return False
            finally:
                os.close(fd)
            self._skip[key] = why
        return why == ""

    def _sample_map(self, pid: int, pm: int, m: re.Match[bytes], lines: list[bytes], budget: list[int]) -> None:
        start, end, pgoff = int(m[1], 16), int(m[2], 16), int(m[4], 16)
        key = (os.makedev(int(m[5], 16), int(m[6], 16)), int(m[7]))
        path = _unescape(m[8])
        if path in self._gave_up or not self._image_file(pid, start, end, key):
            return
        if path not in self._files:
            if len(self._files) >= MAX_FILES:
                self._give_up(path, f"more than {MAX_FILES} mapped files", lines)
                return
            self._files[path] = RangeSet()
        pages = (end - start) // PAGE
        if pages > budget[0]:
            self._give_up(path, f"more than {MAX_SAMPLE_PAGES} mapped pages in one sample", lines)
            return
        budget[0] -= pages
        for first in range(0, pages, CHUNK_PAGES):
            n = min(CHUNK_PAGES, pages - first)
            try:
                entries = os.pread(pm, 8 * n, (start // PAGE + first) * 8)
            except OSError:
                return
            for a, b in _page_runs(entries, first):
                self._add(path, pgoff + a * PAGE, pgoff + b * PAGE, lines)
                if path in self._gave_up:
                    return

    def _add(self, path: str, start: int, end: int, lines: list[bytes]) -> None:
        ranges = self._files[path]
        if ranges.add(start, end) == 0:
            return
        if len(ranges) > MAX_RANGES:
            self._give_up(path, f"more than {MAX_RANGES} mapped ranges", lines)
            return
        lines.append(json.dumps({"mapped": path, "off": start, "len": end - start}).encode() + b"\n")

    def _give_up(self, path: str, why: str, lines: list[bytes]) -> None:
        self._gave_up.add(path)
        self._files.pop(path, None)
        lines.append(json.dumps({"unobserved": path, "why": why}).encode() + b"\n")


class SamplerProcess:
    """Samples every ``period_ms`` in a child process of its own; ``wake_fd`` (the read end of
    its lines) turns readable when there are lines, :meth:`take` hands them over.

    A process, not a thread: the range session answers the container's reads from a loop that
    re-enters C from Python, and a sampler holding the GIL made those readers wait up to the
    interpreter's switch interval (p99 of a pread 0.1 ms -> 5 ms). Fork it before the fanotify
    group exists, so the child never holds the group (a leftover would keep readers waiting)."""

    def __init__(self, sampler: MappedSampler, period_ms: int = SAMPLE_MS) -> None:
        lines_r, lines_w = os.pipe2(os.O_CLOEXEC)
        stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:  # the child: sample until the stop pipe is readable (written or closed)
            code = 1
            try:
                _close_all_but({lines_w, stop_r, sampler.procfd})
                _child(sampler, period_ms, stop_r, lines_w)
                code = 0
            finally:
                os._exit(code)
        os.close(lines_w)
        os.close(stop_r)
        sampler.close()  # the child's copy is the one in use
        os.set_blocking(lines_r, False)
        self.wake_fd = lines_r
        self._partial = b""
        self._eof = False
        self._stopping = False
        self._early = False  # the child ended before it was asked to

    @property
    def ended(self) -> bool:
        """Has the child's pipe ended (it exited)?"""
        return self._eof

    def take(self) -> bytes:
        """The whole lines sampled so far."""
        chunks = [self._partial]
        while not self._eof:
            try:
                data = os.read(self.wake_fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self._eof = True
                self._early = not self._stopping
            chunks.append(data)
        data = b"".join(chunks)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut]

    def finish(self, timeout: float = FINISH_S) -> bytes:
        """Stop the child after a last sample; every line not taken yet. A sample still running
        after ``timeout`` seconds (a process's page tables locked that long) is cut short (the
        child is killed), said by a line: the trace's end never waits on a tenant."""
        self._stopping = True
        os.close(self._stop_w)
        out = [self.take()]
        deadline = time.monotonic() + timeout
        while not self._eof and (left := deadline - time.monotonic()) > 0:
            select.select([self.wake_fd], [], [], left)
            out.append(self.take())
        if not self._eof:
            os.kill(self.pid, signal.SIGKILL)
            out.append(json.dumps({"unobserved": "", "why": f"the last sample took more than {timeout:g} s"})
                       .encode() + b"\n")
        _, status = os.waitpid(self.pid, 0)
        if self._early:
            out.append(json.dumps({"unobserved": "", "why": f"the sampler ended early (status {status})"})
                       .encode() + b"\n")
        os.close(self.wake_fd)
        return b"".join(out)


def _close_all_but(keep: set[int]) -> None:
    """Close every fd of this (child) process but ``keep``: the session's pipes to the host, its
    pidfd, ... stay the session's alone."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own fd, gone


def _child(sampler: MappedSampler, period_ms: int, stop_r: int, lines_w: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):  # the session says when: its stop pipe
        signal.signal(sig, signal.SIG_IGN)
    os.setpriority(os.PRIO_PROCESS, 0, NICE_SAMPLE)
    startup_end = time.monotonic() + STARTUP_S
    while True:
        period = min(period_ms, STARTUP_SAMPLE_MS) if time.monotonic() < startup_end else period_ms
        stopping = bool(select.select([stop_r], [], [], period / 1000)[0])
        try:
            lines = sampler.sample()
        except OSError as e:  # /proc unreadable: said once per sample that failed
            lines = [json.dumps({"unobserved": "", "why": f"page tables: {e.strerror}"}).encode() + b"\n"]
        data = b"".join(lines)
        while data:
            data = data[os.write(lines_w, data):]
        if stopping:
            return
