"""The process side of a range trace: mark an image's lower directories, answer and pump lines.

Runs in the host mount namespace (a fork of the warm tracer helper): the lower directories are
host paths, read from the container's root overlay mount. The C core (``native/range_tracer.c``)
answers every pre-access event at once and writes JSON lines for the container's reads; this
module writes them to ``out_fd`` once per batch. Same status protocol as
:mod:`nydus_top.tracing.file_session`; an arming failure is ``E`` + ``ranges unavailable: <why>``.

Unlike a file tracer it keeps the spare's raised priority (``NICE_ARM``) while it runs: the
container's readers wait for its answers.

Two things bound what the marks cost the image's readers. A watchdog in the process that asked
for the trace (``native/range_watchdog.c``) gets, over ``watch_fd`` and before any mark is placed,
a copy of the fanotify fd, a page where every batch is published and a pidfd of this process: an
event left unanswered for longer than its bound ends this process, whatever stops it. And ranges
are recorded for a start-up window only (``window_ms``): then the marks go, a
``{"notice":"window"}`` line says so, and the trace ends.

At the end (after the marks are removed and the queue drained) one last line says how many marks
the fanotify group still holds, read from our own ``/proc/self/fdinfo``: ``{"marks_left": n,
"events": n, "foreign": n}``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import select
import socket
import struct
import time

from nydus_top._native import ffi, lib
from nydus_top.tracing import file_session as trace_session
from nydus_top.tracing.file_session import ERROR, EXITED, READY, STOPPED
from nydus_top.tracing.mapped import MappedSampler, SamplerProcess
from nydus_top.tracing.overlay import OverlayError, OverlayRoot, parse_mountinfo

MAX_MARKS = 65536  # directories marked per trace at most (each pins an inode while marked)
FLUSH_MS = 50  # lines reach the host at most this late while events keep coming
BACKLOG_MAX = 16 << 20  # bytes of lines held for a slow reader of out_fd; then ranges stop
WINDOW_MS = 30_000  # ranges are recorded this long after arming, unless told otherwise
UNAVAILABLE = "ranges unavailable: "


_OLD_KERNEL = f"kernel {platform.release()} has no pre-access events (needs 6.14+)"


def kernel_has_pre_access(release: str | None = None) -> bool:
    """Is the running kernel (or ``release``) 6.14 or later (FAN_PRE_ACCESS)?"""
    m = re.match(r"([0-9]+)\.([0-9]+)", release or platform.release())
    if m is None:
        return True  # unparsable: let the filesystem message stand
    return (int(m[1]), int(m[2])) >= (6, 14)


class RangeArmError(Exception):
    """Ranges cannot be recorded for this container; the message says why (one line)."""


def _fstype(path: str) -> str:
    """The filesystem type holding host ``path`` (longest mount point prefix), or '?'."""
    try:
        with open("/proc/self/mountinfo", encoding="latin-1") as f:
            mounts = parse_mountinfo(f.read())
        real = os.path.realpath(path)
    except OSError:
        return "?"
    best = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") + "/"
        if (real + "/").startswith(mp) and (best is None or len(mp) >= len(best.mount_point.rstrip("/") + "/")):
            best = m
    return best.fstype if best else "?"


def mount_namespace(procfd: int, pid: int) -> tuple[int, int]:
    """(st_dev, st_ino) of ``pid``'s mount namespace through host procfs ``procfd``."""
    st = os.stat(f"{pid}/ns/mnt", dir_fd=procfd)
    return st.st_dev, st.st_ino


class RangeSession:
    """A pre-content fanotify group with marks on every directory of the given layers. Owns
    ``procfd`` once constructed."""

    def __init__(self, procfd: int, ns: tuple[int, int], lowerdirs: tuple[str, ...], *,
                 small_set: bool = False, max_marks: int = MAX_MARKS, granularity: int = 0,
                 watch_fd: int | None = None) -> None:
        err = ffi.new("int *")
        self._t = lib.nt_ranges_open(procfd, ns[0], ns[1], lib.NT_SMALL_SET if small_set else 0, err)
        if self._t == ffi.NULL:
            if err[0] in (22, 38):  # EINVAL, ENOSYS: no FAN_CLASS_PRE_CONTENT
                raise RangeArmError(UNAVAILABLE + _OLD_KERNEL)
            raise RangeArmError(f"{UNAVAILABLE}fanotify: {os.strerror(err[0])}")
        lib.nt_ranges_set_granularity(self._t, max(granularity, 0))
        self._procfd = procfd
        self._buf = ffi.new("char[]", lib.NT_RANGE_OUT_CAP)
        self._view = memoryview(ffi.buffer(self._buf))
        self.marks = 0
        self._pending = bytearray()
        self._gave_up = False
        self.mapped: SamplerProcess | None = None  # mapped pages (see nydus_top.tracing.mapped)
        try:
            if watch_fd is not None:  # the watchdog first: no reader may wait on marks it cannot see
                self._hand_to_watchdog(watch_fd)
            for layer in lowerdirs:
                n = lib.nt_ranges_mark_tree(self._t, os.fsencode(layer), max_marks - self.marks)
                if n < 0:
                    raise RangeArmError(UNAVAILABLE + self._why(-n, layer, max_marks))
                self.marks += n
        except BaseException:
            lib.nt_ranges_close(self._t)  # procfd stays the caller's
            self._t = ffi.NULL
            raise

    def follow_cache(self) -> None:
        """Look at the page cache of each file when it is first seen and at the end: what a mapping
        too short for the sampler left behind (see nydus_top.tracing.range_tracer's cache lines).
        One fd is kept per file for the end (NT_CACHE_FILES at most): the open-file limit is raised
        to hold them."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = soft + lib.NT_CACHE_FILES
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        lib.nt_ranges_cache(self._t, 1)

    def _hand_to_watchdog(self, watch_fd: int) -> None:
        """Share the batch page and send the watchdog our group, the page and a pidfd of us."""
        fds: list[int] = []
        try:
            page = os.memfd_create("nydus-top-range-beat", os.MFD_CLOEXEC)
            fds.append(page)
            fds.append(os.pidfd_open(os.getpid()))
            os.ftruncate(page, 4096)
            rc = lib.nt_ranges_share(self._t, page)
            if rc < 0:
                raise OSError(-rc, os.strerror(-rc))
            with socket.socket(fileno=os.dup(watch_fd)) as sock:  # watch_fd stays open until we exit
                socket.send_fds(sock, [b"W"], [self.fd, *fds])
        except OSError as e:
            raise RangeArmError(f"{UNAVAILABLE}watchdog: {e.strerror}") from None
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _why(errno: int, layer: str, max_marks: int) -> str:
        if errno == 28:  # ENOSPC
            return f"the image has more than {max_marks} directories"
        if errno == 22 and not kernel_has_pre_access():  # EINVAL: FAN_PRE_ACCESS is unknown
            return _OLD_KERNEL
        if errno in (22, 95):  # EINVAL, EOPNOTSUPP
            return f"{_fstype(layer)} (lower layer {layer!r}) has no pre-content events"
        return f"mark lower layer {layer!r}: {os.strerror(errno)}"

    @property
    def fd(self) -> int:
        return int(lib.nt_ranges_fd(self._t))

    def drain_batch(self) -> bool:
        """Answer one batch and keep its lines for :meth:`flush`; True if there were lines.

        Readers in the container wait for our answers, so a slow consumer of our output must
        never block us: lines wait here, up to BACKLOG_MAX bytes; past that the marks go and
        the trace ends its ranges with a ``backlog`` notice."""
        n = int(lib.nt_ranges_drain(self._t, self._buf, lib.NT_RANGE_OUT_CAP))
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        self._keep(n)
        return n > 0

    def _keep(self, n: int) -> None:
        if n and not self._gave_up:
            room = BACKLOG_MAX - len(self._pending)
            if n > room:  # keep the whole lines that fit, then stop recording
                cut = bytes(self._view[:max(room, 0)]).rfind(b"\n") + 1
                self._pending += self._view[:cut]
                self._gave_up = True
                lib.nt_ranges_unmark(self._t)
            else:
                self._pending += self._view[:n]

    def flush(self, out_fd: int) -> None:
        """Write what ``out_fd`` takes without blocking (it must be non-blocking)."""
        while self._pending:
            try:
                done = os.write(out_fd, self._pending[:1 << 20])
            except BlockingIOError:
                return
            del self._pending[:done]

    def marks_left(self) -> int:
        """Marks (and ignore marks) our group still holds, as the kernel lists them."""
        with open(f"/proc/self/fdinfo/{self.fd}", encoding="latin-1") as f:
            return sum(1 for line in f if line.startswith("fanotify ino:"))

    def finish(self, out_fd: int) -> None:
        """Remove every mark, answer what is queued, then write everything and a closing line."""
        rc = lib.nt_ranges_unmark(self._t)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        while self.drain_batch() or select.select([self.fd], [], [], 0)[0]:
            pass
        self._take_mapped(last=True)
        while (n := lib.nt_ranges_cache_end(self._t, self._buf, lib.NT_RANGE_OUT_CAP)) > 0:
            self._keep(n)  # what the page cache of the files seen holds now
        end = {"marks_left": self.marks_left(), "events": lib.nt_ranges_events(self._t, 0),
               "foreign": lib.nt_ranges_events(self._t, 1)}
        if self._gave_up:
            self._pending += b'{"notice":"backlog"}\n'
        self._pending += json.dumps(end).encode() + b"\n"
        os.set_blocking(out_fd, True)  # no mark is left: nobody waits for us any more
        self.flush(out_fd)

    def pump(self, out_fd: int, stop_fds: list[int], pidfd: int | None, window_ms: int | None = None) -> bytes:
        """Answer and stream until a stop fd is readable, the target exits or ``window_ms`` have
        passed (then a ``window`` notice); then finish.

        The C loop answers events with no Python in between and comes back at least every
        FLUSH_MS while it has lines, so a live view stays current, and as soon as ``out_fd``
        takes more of the lines waiting here."""
        os.set_blocking(out_fd, False)
        timer = -1
        if window_ms is not None:
            timer = int(lib.nt_ranges_timer(window_ms))
            if timer < 0:
                raise OSError(-timer, os.strerror(-timer))
        try:
            return self._pump(out_fd, stop_fds, pidfd, timer)
        finally:
            if timer >= 0:
                os.close(timer)

    def _pump(self, out_fd: int, stop_fds: list[int], pidfd: int | None, timer: int) -> bytes:
        waits = [*stop_fds, *([pidfd] if pidfd is not None else []), *([timer] if timer >= 0 else [])]
        mapped = [self.mapped.wake_fd] if self.mapped is not None else []  # last: dropped once it ends
        wait_arr = ffi.new("int[]", waits + mapped)
        while True:
            write_fd = out_fd if self._pending else -1  # lines wait for room in the pipe
            n = lib.nt_ranges_serve(self._t, wait_arr, len(waits) + len(mapped), write_fd, self._buf,
                                    lib.NT_RANGE_OUT_CAP, FLUSH_MS)
            if n < 0:
                raise OSError(-n, os.strerror(-n))
            self._keep(n)
            self._take_mapped(last=False)
            if mapped and self.mapped is not None and self.mapped.ended:
                mapped = []  # its pipe stays readable (end of file): waited on no more
            self.flush(out_fd)
            ready = select.select(waits, [], [], 0)[0]
            end = STOPPED if any(fd in stop_fds for fd in ready) else EXITED if pidfd in ready else None
            if end is None and timer in ready:
                self._pending += b'{"notice":"window"}\n'
                end = STOPPED
            if end is not None:
                self.finish(out_fd)
                return end

    def _take_mapped(self, last: bool) -> None:
        """Lines of the mapped-page sampler join ours (the last sample once the trace ends)."""
        if self.mapped is None:
            return
        lines = self.mapped.finish() if last else self.mapped.take()
        if last:
            self.mapped = None
        if lines and not self._gave_up:
            self._pending += lines

    def close(self) -> None:
        if self.mapped is not None:
            self.mapped.finish()
            self.mapped = None
        if self._t != ffi.NULL:
            lib.nt_ranges_close(self._t)
            self._t = ffi.NULL
            os.close(self._procfd)


def arm(pid: int, *, container_id: str | None = None, lowerdirs: tuple[str, ...] | None = None,
        small_set: bool = False, max_marks: int = MAX_MARKS, granularity: int = 0,
        watch_fd: int | None = None, mapped: bool = True) -> tuple[RangeSession, int]:
    """Mark the lower directories of ``pid``'s root overlay (or ``lowerdirs``). Returns the
    session and a pidfd. With ``granularity`` > 0 files go quiet once their touched chunks cover
    them. Raises RangeArmError (target gone, not an overlay, unsupported)."""
    try:
        pidfd, procfd = trace_session.open_target(pid, container_id)
    except trace_session.ArmError as e:
        raise RangeArmError(f"{UNAVAILABLE}{e}") from None
    try:
        try:
            ns = mount_namespace(procfd, pid)
            if lowerdirs is None:
                lowerdirs = OverlayRoot.for_pid(pid).lowerdirs
            root_dev = os.stat(f"{pid}/root", dir_fd=procfd).st_dev  # the root overlay
        except (OSError, OverlayError) as e:
            raise RangeArmError(f"{UNAVAILABLE}{getattr(e, 'strerror', None) or e}") from None
        if not trace_session.alive(pidfd):
            raise RangeArmError(f"{UNAVAILABLE}pid {pid} exited")
        # forked before the fanotify group exists: the sampler never holds it
        sampler = SamplerProcess(MappedSampler(os.dup(procfd), ns, root_dev)) if mapped else None
        try:
            session = RangeSession(procfd, ns, lowerdirs, small_set=small_set, max_marks=max_marks,
                                   granularity=granularity, watch_fd=watch_fd)
        except BaseException:
            if sampler is not None:
                sampler.finish()
            raise
        session.mapped = sampler
        if mapped:
            session.follow_cache()
    except BaseException:
        os.close(pidfd)
        os.close(procfd)
        raise
    return session, pidfd


def run(pid: int, *, out_fd: int, status_fd: int | None = None, stop_fd: int | None = None,
        container_id: str | None = None, small_set: bool = False, max_marks: int = MAX_MARKS,
        granularity: int = 0, watch_fd: int | None = None, window_ms: int = WINDOW_MS, mapped: bool = True) -> int:
    """Record ranges for ``pid``'s container (and the pages its processes map, with *mapped*) until
    a stop (SIGTERM/SIGINT, ``stop_fd``), its exit or the end of the window. Exit code as
    :func:`nydus_top.tracing.file_session.run`."""
    wake_r = trace_session.stop_on_signals()
    status = trace_session.status_writer(status_fd)

    try:
        session, pidfd = arm(pid, container_id=container_id, small_set=small_set, max_marks=max_marks,
                             granularity=granularity, watch_fd=watch_fd, mapped=mapped)
    except RangeArmError as e:
        status(ERROR + str(e).encode("utf-8", "replace")[:1024])
        return 2
    except Exception as e:  # noqa: BLE001 - the caller learns of it as a status, never silence
        status(ERROR + f"{UNAVAILABLE}{type(e).__name__}: {e}".encode("utf-8", "replace")[:1024])
        return 2
    status(READY + struct.pack("<Iq", os.getpid(), time.clock_gettime_ns(time.CLOCK_REALTIME)))  # as file_session's
    stop_fds = [wake_r] + ([stop_fd] if stop_fd is not None else [])
    try:
        end = session.pump(out_fd, stop_fds, pidfd, window_ms)
    except BrokenPipeError:
        status(STOPPED)
        return 1
    except OSError as e:
        status(ERROR + f"range tracer: {e.strerror}".encode())
        return 2
    finally:
        session.close()
    status(end)
    return 0
