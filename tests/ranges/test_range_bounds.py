"""The range tracer's watchdog and window: whatever happens to the range tracer, readers of the
image's files never wait for it for long, and its marks do not outlive the start-up window."""

from __future__ import annotations

import logging
import os
import signal
import subprocess

from nydus_top.tracing import range_tracer
from nydus_top.tracing.range_tracer import start_ranges

from .test_range_tracer import workload

# A guard so that a failing test ends; what is asserted is that each read completed, not how fast.
NEVER = 120


def _kill(pid: int | None) -> None:
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)  # a stopped tracer would hold the readers past the test
        except ProcessLookupError:
            pass


def test_a_stopped_range_tracer_holds_no_reader_host_or_container(pool, container, image, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=range_tracer.__name__)
    c = container(image, {"/data/f": b"f" * 8192, "/data/g": b"g" * 100}, workload("read:/data/g"))
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    tracer = trace.tracer_pid
    try:
        os.kill(tracer, signal.SIGSTOP)
        # a host process (another mount namespace than the container's) reads a file of the image
        host = subprocess.run(["cat", str(image / "data/f")], capture_output=True, timeout=NEVER, check=True)
        assert host.stdout == b"f" * 8192
        c.go()  # the container reads another file: it completes too
        c.wait_note(NEVER)
        assert trace.wait(NEVER)
    finally:
        _kill(tracer)
    assert trace.error is not None and trace.error.startswith("ranges stopped: a read of the image waited ")
    assert "(bound 100 ms); it was ended, the trace goes on without ranges" in trace.error
    lines = [r.getMessage() for r in caplog.records if r.name == range_tracer.__name__]
    assert lines == [f"range tracer of pid {c.pid}: {trace.error}"]
    assert not os.path.exists(f"/proc/{tracer}")


def _fanotify_fds() -> list[str]:
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]":
                fds.append(fd)
        except OSError:
            continue
    return fds


def test_after_a_normal_stop_the_watchdog_keeps_no_copy_of_the_group(pool, container, image) -> None:
    c = container(image, {"/data/f": b"f" * 100}, workload("read:/data/f"))
    c.wait_note()
    before = _fanotify_fds()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    trace.stop()
    assert trace.error is None and trace.book.get("/data/f") is None and "/data/f" in trace.book
    assert _fanotify_fds() == before


def test_ranges_end_with_their_window_and_no_mark_remains(pool, container, image) -> None:
    c = container(image, {"/data/f": b"f" * 100}, workload("read:/data/f"))
    c.wait_note()
    before = _fanotify_fds()
    trace = start_ranges(pool, c.pid, window_s=0.2)
    trace.wait_ready(5)
    tracer = trace.tracer_pid
    assert trace.wait(NEVER)  # ended by itself: nobody stopped it, the container still runs
    assert trace.error is None and trace.collector.notices == ["window"]
    assert trace.collector.end is not None and trace.collector.end.marks_left == 0
    assert not os.path.exists(f"/proc/{tracer}") and _fanotify_fds() == before  # no group, no mark
    c.go()
    c.wait_note()  # its read after the window made no event: nobody is there to answer one
    trace.stop()  # a stop after the end is harmless
    assert "/data/f" not in trace.book and trace.collector.end.events == 0


def test_range_tracers_past_the_most_at_once_record_files_only(pool, container, image) -> None:
    from nydus_top.tracing.arming import pool_starter
    from nydus_top.tracing.range_tracer import RangeSlots

    slots = RangeSlots(1)
    start = pool_starter(pool, ranges=True, slots=slots)
    a, b = container(image, {"/data/f": b"f"}, workload()), container(image, {}, workload())
    a.wait_note()
    b.wait_note()
    first = start(a.pid)
    first.wait_ready_sync(5)
    assert first.ranges is not None and first.ranges_error == ""  # at the limit
    second = start(b.pid)
    second.wait_ready_sync(5)
    assert second.ranges is None
    assert second.ranges_error == "ranges unavailable: 1 range tracer is running, the most at once (MAX_RANGE_TRACES)"
    first.stop_sync()  # its range tracer has exited: its slot is free again
    third = start(b.pid)
    third.wait_ready_sync(5)
    assert third.ranges is not None and third.ranges_error == ""
    second.stop_sync()
    third.stop_sync()
    assert slots.running == 0


def test_the_watchdog_ends_a_tracer_stuck_in_a_batch_it_read() -> None:
    """A batch read and never answered (the tracer stopped between its read and its answers):
    the shared page says since when; the events are no longer queued, so only the page tells."""
    import mmap
    import socket
    import struct
    import time

    from nydus_top._native import ffi, lib

    procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    err = ffi.new("int *")
    group = lib.nt_ranges_open(procfd, 0, 0, 0, err)
    assert group != ffi.NULL, os.strerror(err[0])
    stuck = subprocess.Popen(["sleep", "3600"])  # stands for the tracer: only its pidfd is used
    page = os.memfd_create("beat", os.MFD_CLOEXEC)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        os.ftruncate(page, 4096)
        with mmap.mmap(page, 4096) as beat:
            since = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 2 * 10**9
            struct.pack_into("<qQ", beat, 0, since, 7)  # busy for 2 s already, 7 batches before
            watchdog = lib.nt_watchdog_start(ours.detach(), 100, err)
            assert watchdog != ffi.NULL
            me = os.pidfd_open(stuck.pid)
            socket.send_fds(theirs, [b"W"], [lib.nt_ranges_fd(group), page, me])
            os.close(me)
            assert stuck.wait(NEVER) == -signal.SIGKILL
            assert lib.nt_watchdog_fired(watchdog) >= 2000  # stored before the kill
            theirs.close()  # the tracer's end: the watchdog's thread ends
            lib.nt_watchdog_stop(watchdog)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()
        os.close(page)
        lib.nt_ranges_close(group)
        os.close(procfd)
