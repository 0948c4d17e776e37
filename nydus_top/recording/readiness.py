"""The readiness cut: where a start-up list ends, besides the container's stop.

The first of: a line of the container's output matching ``ready_line`` (read from the CRI log file
containerd writes, in the pod's log directory), a file read matching ``ready_file`` (that file is
the list's last), or ``ready_after`` seconds of trace. :class:`Readiness` holds the settings;
:class:`LogWatch` follows one container's log. Container output is hostile: reads are bounded
(:data:`READ_MAX` a poll, lines cut at :data:`LINE_MAX`), the file is opened without following a
symlink, and a matched line is kept at most :data:`DETAIL_MAX` characters.

The log is looked at every :data:`POLL_S`, so the line is seen a little after it was printed. The
time containerd stamped on it (when it read it from the container) is passed on with it: the
gate then drops the reads traced after that time, however late the line was seen. A line without
a stamp cuts where it is seen.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nydus_top.config import Config
from nydus_top.model.records import Access, TraceRecord
from nydus_top.text import counted

POLL_S = 0.02  # how often a followed log is looked at (the line's stamp, not this, is where the list ends)
READ_MAX = 1 << 20  # bytes of log read a poll at most
LINE_MAX = 64 << 10  # a longer log line is matched on its first LINE_MAX bytes
DETAIL_MAX = 256  # characters of a matched line kept in the metadata

READY_LINE, READY_FILE, READY_AFTER, OPERATOR = "ready_line", "ready_file", "ready_after", "operator"
_STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class Readiness:
    """Where start-up ends; all off by default."""

    line: re.Pattern[str] | None = None  # searched in each line the container prints
    file: re.Pattern[str] | None = None  # searched in each path the container reads
    after: float = 0.0  # seconds of trace; 0: no time window

    @property
    def enabled(self) -> bool:
        return self.line is not None or self.file is not None or self.after > 0

    def describe(self) -> str:
        parts = [f"line ~ {self.line.pattern!r}" if self.line else "", f"file ~ {self.file.pattern!r}" if self.file
                 else "", f"after {self.after:g}s" if self.after > 0 else ""]
        return ", ".join(p for p in parts if p) or "off"


def readiness_from(config: Config) -> Readiness:
    """The configured readiness (``[record] ready_line``, ``ready_file``, ``ready_after``)."""
    return Readiness(compile_pattern(config.ready_line, "ready_line"), compile_pattern(config.ready_file, "ready_file"),
                     config.ready_after)


class ReadyGate:
    """Passes a trace's batches on to *sink* until start-up ends, then nothing more.

    A file read matching ``file`` (passed on, the last) and a read past ``after`` end it in the
    stream; :meth:`cut_at` ends it from elsewhere (a log's ready line, a timer). *on_cut* is called
    once, on the thread that cut. After a ready line, batches still pass: they hold reads from
    before the line that the tracer had yet to hand over (the trace is stopped right after). When
    the line has a time (``at_ns``) and *mark_ns* gives the wall-clock time of the trace's elapsed
    0, records traced after the line are dropped (:attr:`until_us`) but for the tracer's first
    batch after it, which may hold reads from before; those passed on before the line was seen
    are the sink owner's to drop (:meth:`CompactList.drop_after`, :meth:`TraceRun.drop_after`)."""

    def __init__(self, ready: Readiness, sink: Callable[[list[TraceRecord]], None],
                 on_cut: Callable[[], object] = lambda: None,
                 mark_ns: Callable[[], int | None] = lambda: None) -> None:
        self.ready, self._sink, self._on_cut, self._mark_ns = ready, sink, on_cut, mark_ns
        self._after_us = int(ready.after * 1e6)
        self._lock = threading.Lock()
        self.cut: tuple[str, str] | None = None  # (why, what): see READY_LINE...
        self.until_us: int | None = None  # a stamped ready line's time, in the trace's elapsed_us
        self.last: tuple[str, int] = ("", 0)  # the last file passed on and its elapsed time
        self._after_batch: int | None = None  # the time of the first batch after a stamped line
        self._passed_us = -1  # the time of the last record passed on

    def __call__(self, batch: Sequence[TraceRecord]) -> None:
        passed: list[TraceRecord] = []
        for item in batch:
            cut = self.cut
            if cut is not None and cut[0] != READY_LINE:
                break
            if self.until_us is not None and item.elapsed_us > self.until_us and not self._first_after(item):
                continue  # traced after the line was printed: not start-up
            if isinstance(item, Access):
                if self._after_us and item.elapsed_us > self._after_us:
                    self.cut_at(READY_AFTER, f"{self.ready.after:g}s")
                    break
                self.last = (item.path, item.elapsed_us)
            passed.append(item)
            self._passed_us = item.elapsed_us
            if isinstance(item, Access) and self.ready.file is not None and self.ready.file.search(item.path):
                self.cut_at(READY_FILE, item.path)  # the file that says "ready" is the list's last
        if passed:
            self._sink(passed)

    def _first_after(self, item: TraceRecord) -> bool:
        """Whether *item* is of the tracer's first batch timed after the ready line. A record is
        timed when the tracer reads it, so that batch may hold reads made before the line: it
        passes whole (never a start-up read lost). :func:`kept_until` is the same rule over what
        was passed on before the line was seen."""
        if self._after_batch is None:
            self._after_batch = item.elapsed_us
        return item.elapsed_us == self._after_batch

    def cut_at(self, why: str, what: str, at_ns: int | None = None) -> bool:
        """End start-up now (the first cut wins; any thread). True if this call cut. *at_ns*: the
        wall-clock time (ns) of a ready line, when its log stamped it."""
        with self._lock:
            if self.cut is not None:
                return False
            mark_ns = self._mark_ns()
            if why == READY_LINE and at_ns is not None and mark_ns is not None:
                self.until_us = (at_ns - mark_ns) // 1000
                if self._passed_us > self.until_us:  # that batch began before the line was seen
                    self._after_batch = self._passed_us
            self.cut = (why, what)
        self._on_cut()
        return True


def line_time(until_us: int) -> str:
    """A stamped ready line's time in the trace (:attr:`ReadyGate.until_us`), as the recorder's log
    and the app say it: ``0.280000s``."""
    return f"{until_us / 1e6:.6f}s"


def dropped_after(until_us: int, files: int) -> str:
    """What the cut at a stamped ready line took out of a list: the *files* traced after
    *until_us* that had been handed over before the line was seen (``drop_after``), said once by
    the recorder's log and the app's status line alike. The time and the count come first: they
    fit an 80-column status line."""
    gone = f"{counted(files, 'file')} traced after it left the list" if files else "no file listed was traced after it"
    return f"start-up ended at {line_time(until_us)} (ready line): {gone}"


def compile_pattern(text: str, what: str) -> re.Pattern[str] | None:
    """*text* as a regular expression (None when empty); ValueError (one line) when invalid."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as err:
        raise ValueError(f"{what}: invalid regular expression {text!r}: {err}") from None


def cri_time(line: bytes) -> int | None:
    """The time (ns since the epoch) containerd stamped on one CRI log line (RFC 3339 with
    nanoseconds, its first field); None when it has none."""
    match = _STAMP.fullmatch(line[:64].split(b" ", 1)[0])
    if match is None:
        return None
    whole, fraction, zone = (part.decode() if part else "" for part in match.groups())
    try:
        seconds = datetime.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    except ValueError:  # a month 13, an hour 25
        return None
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def cri_content(line: bytes) -> str:
    """What the container printed, from one CRI log line (``TIME STREAM TAG CONTENT``); a line not
    in that shape is taken whole."""
    parts = line.split(b" ", 3)
    if len(parts) == 4 and parts[1] in (b"stdout", b"stderr") and parts[2][:1] in (b"F", b"P"):
        line = parts[3]
    return line.decode("utf-8", "replace")


def log_candidates(log_directory: str, container: str) -> list[Path]:
    """Where CRI's log of *container* may be: kubelet's ``<dir>/<name>/<restarts>.log`` (the
    highest first), then ``<dir>/<name>.log`` (crictl's and the sandbox's)."""
    if not log_directory or not container or "/" in container or container in (".", ".."):
        return []
    base = Path(log_directory)
    numbered: list[tuple[int, Path]] = []
    try:
        for entry in os.scandir(base / container):
            stem = entry.name.removesuffix(".log")
            if entry.name.endswith(".log") and stem.isdigit():
                numbered.append((int(stem), Path(entry.path)))
    except OSError:
        pass
    return [path for _, path in sorted(numbered, reverse=True)] + [base / f"{container}.log"]


def _size(path: Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return 0


class LogWatch:
    """Follows one container's CRI log for a line matching *pattern*; calls *on_match* (on the
    loop) once with the line and its stamp (:func:`cri_time`), then stops. Lines already in the
    log when it starts are skipped (a restarted container appends to the same file)."""

    def __init__(self, log_directory: str, container: str, pattern: re.Pattern[str],
                 on_match: Callable[[str, int | None], object]) -> None:
        self._dir, self._name, self._pattern, self._on_match = log_directory, container, pattern, on_match
        self._skip = {path: _size(path) for path in log_candidates(log_directory, container)}
        self._task: asyncio.Task[None] | None = None
        self.path: Path | None = None  # the log followed, once found

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _follow(self) -> None:
        fd = -1
        pending = b""
        skipping = False  # in the rest of a line already matched on its first LINE_MAX bytes
        try:
            while True:
                if fd < 0:
                    fd = self._open()
                chunk = _read(fd) if fd >= 0 else b""
                if not chunk:
                    await asyncio.sleep(POLL_S)
                    continue
                *lines, pending = (pending + chunk).split(b"\n")
                if skipping and lines:
                    lines, skipping = lines[1:], False
                if len(pending) > LINE_MAX and not skipping:
                    lines.append(pending[:LINE_MAX])
                    skipping = True
                if len(pending) > LINE_MAX:
                    pending = b""
                for line in lines:
                    text = cri_content(line[:LINE_MAX])
                    if self._pattern.search(text):
                        self._on_match(text[:DETAIL_MAX], cri_time(line))
                        return
        finally:
            if fd >= 0:
                os.close(fd)

    def _open(self) -> int:
        for path in log_candidates(self._dir, self._name):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ELOOP, errno.EACCES, errno.ENOTDIR):
                    continue
                raise
            os.lseek(fd, self._skip.get(path, 0), os.SEEK_SET)
            self.path = path
            return fd
        return -1


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, READ_MAX)
    except BlockingIOError:
        return b""
