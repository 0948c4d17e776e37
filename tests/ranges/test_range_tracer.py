"""The range tracer against the real kernel: pre-access events on a loop ext4 lower layer, reads
made through overlayfs by home-made containers."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from nydus_top._native import lib
from nydus_top.lists.ranges import RangeSet
from nydus_top.tracing.range_tracer import RangesUnavailable, start_ranges

NT_RANGES_PER_FILE = lib.NT_RANGES_PER_FILE

MiB = 1 << 20


def workload(*steps: str) -> list[str]:
    return ["signal:{note}", "wait:{go}", *steps, "signal:{note}", "wait:{go}"]


def phases(pool, c, **kw):
    """Arm ranges on the set-up container and run its first phase (up to its next signal)."""
    c.wait_note()
    trace = start_ranges(pool, c.pid, **kw)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    return trace


def seen(trace, predicate, timeout: float = 10.0) -> None:
    """Wait until ``predicate(collector)`` holds. Lines leave the tracer after their event's
    bookkeeping (ignore marks included), so this orders the container's next reads after it."""
    cond = threading.Condition()
    trace.collector.follow(lambda _book: cond.acquire() and (cond.notify_all(), cond.release()))
    with cond:
        assert cond.wait_for(lambda: predicate(trace.collector), timeout)


def ranged(pool, c):
    """Arm ranges on the set-up container, let the workload run, stop and return the trace."""
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    trace.stop()
    return trace


def test_exact_ranges_of_pread_read_and_readv_through_overlayfs(pool, container, image) -> None:
    c = container(image, {"/data/big": 64 * MiB, "/data/small": b"s" * 5000, "/data/vec": 8 * MiB},
                  workload("pread:/data/big:409600:4096", "pread:/data/big:40000000:100",
                           "read:/data/small", "readv:/data/vec:1048576:4096,8192"))
    trace = ranged(pool, c)
    book = trace.book
    # The kernel reports buffered reads by the pages they touch: 100 bytes at 40000000 is page 9765.
    assert book.get("/data/big") == RangeSet([(409600, 413696), (9765 * 4096, 9766 * 4096)])
    assert "/data/small" in book and book.get("/data/small") is None  # read whole
    assert book.get("/data/vec") == RangeSet([(MiB, MiB + 12288)])
    assert trace.collector.end is not None and trace.collector.end.marks_left == 0


def test_union_across_the_container_processes(pool, container, image) -> None:
    # pid 1 reads one block, then a second process of the container (entered from outside, as
    # `kubectl exec` would) reads an overlapping and a separate one of the same file.
    c = container(image, {"/data/f": 4 * MiB}, workload("pread:/data/f:0:8192"))
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    subprocess.run(["nsenter", "-t", str(c.pid), "-m", "-p", "-r", "-w", "--", "/probe",
                    "pread:/data/f:4096:8192", "readv:/data/f:2097152:4096,4096"], check=True)
    trace.stop()
    assert trace.book.get("/data/f") == RangeSet([(0, 12288), (2 * MiB, 2 * MiB + 8192)])


def test_another_container_of_the_same_image_is_not_counted(pool, container, image) -> None:
    traced = container(image, {"/data/f": 4 * MiB}, workload("pread:/data/f:0:4096"))
    other = container(image, {}, workload("pread:/data/f:1048576:4096", "read:/data/f"))
    traced.wait_note()
    other.wait_note()
    trace = start_ranges(pool, traced.pid)
    trace.wait_ready(5)
    other.go()
    other.wait_note()  # it read the whole file through its own overlay while we were marked
    traced.go()
    traced.wait_note()
    trace.stop()
    assert trace.book.get("/data/f") == RangeSet([(0, 4096)])
    assert trace.collector.end.foreign > 0


def _marks(pid: int) -> list[str]:
    """The fanotify mark lines of every fanotify fd of process ``pid``."""
    lines = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[fanotify]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                lines += [line for line in f if line.startswith("fanotify ino:")]
        except OSError:
            continue
    return lines


def test_marks_cover_every_directory_stop_per_file_and_are_gone_after_the_trace(pool, container, image) -> None:
    c = container(image, {"/a/b/c/small": b"x" * 100, "/a/other": b"y"},
                  ["signal:{note}", "wait:{go}", "signal:{note}", "wait:{go}", "pread:/a/b/c/small:0:100",
                   "signal:{note}", "wait:{go}", "pread:/a/b/c/small:0:100", "read:/a/b/c/small",
                   "signal:{note}", "wait:{go}"])
    trace = phases(pool, c)  # armed, nothing read yet
    dirs = sum(1 for _root, _dirs, _files in os.walk(image))
    marks = _marks(trace.tracer_pid)
    assert len(marks) == dirs and all(" mask:8100000 ignored_mask:0 " in m for m in marks)  # pre-access on children
    c.go()
    c.wait_note()
    seen(trace, lambda col: "/a/b/c/small" in col.whole_why)  # read whole once
    # an ignore mark on that file silences its later reads
    marks = _marks(trace.tracer_pid)
    ignored = [m for m in marks if "ignored_mask:100000" in m]
    assert len(marks) == dirs + 1 and len(ignored) == 1
    small_ino = os.stat(image / "a/b/c/small").st_ino
    assert f"ino:{small_ino:x} " in ignored[0]
    c.go()
    c.wait_note()  # read twice more
    trace.stop()
    assert trace.collector.end.events == 1
    assert trace.book.get("/a/b/c/small") is None and trace.collector.whole_why == {"/a/b/c/small": "read"}
    assert trace.collector.end.marks_left == 0
    assert not os.path.exists(f"/proc/{trace.tracer_pid}")  # the group and its marks are gone


def test_elf_files_count_whole_and_mapped_files_have_no_ranges(pool, container, image) -> None:
    elf = b"\x7fELF" + b"\0" * (64 * 1024)
    c = container(image, {"/lib/libx.so": elf, "/data/mapped": 64 * 1024},
                  workload("pread:/lib/libx.so:0:832", "mmap:/data/mapped"))
    c.wait_note()
    trace = start_ranges(pool, c.pid, mapped=False)  # the pre-access events alone
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    trace.stop()
    assert "/lib/libx.so" in trace.book and trace.book.get("/lib/libx.so") is None
    assert "/data/mapped" not in trace.book  # mappings make no pre-access events (tests/ranges/test_mapped.py)


def test_tmpfs_lower_layer_says_why_ranges_are_unavailable(pool, container, ext4_layers) -> None:
    lower = ext4_layers.tmpfs / "img"
    lower.mkdir()
    c = container(lower, {"/data/f": b"x"}, workload("read:/data/f"))
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    tmpfs = r"^ranges unavailable: tmpfs \(lower layer '.*/img'\) has no pre-content events$"
    with pytest.raises(RangesUnavailable, match=tmpfs):
        trace.wait_ready(5)
    c.go()


def test_a_file_with_more_ranges_than_the_bound_counts_whole_and_goes_quiet(pool, container, image) -> None:
    bound = NT_RANGES_PER_FILE
    c = container(image, {"/data/at": (bound + 1) * 8192, "/data/over": (bound + 2) * 8192},
                  workload(f"scatter:/data/at:8192:4096:{bound}", f"scatter:/data/over:8192:4096:{bound + 1}",
                           "signal:{note}", "wait:{go}", "pread:/data/over:0:100"))
    trace = phases(pool, c)
    seen(trace, lambda col: "/data/over" in col.whole_why)
    c.go()
    c.wait_note()
    trace.stop()
    at = trace.book.get("/data/at")
    assert at is not None and len(at) == bound and at.bytes == bound * 4096  # at the bound: ranges
    assert "/data/over" in trace.book and trace.book.get("/data/over") is None  # past it: whole
    assert trace.collector.whole_why == {"/data/over": "bound"}
    assert trace.collector.end.events == 2 * bound + 1  # the read after it made no event


def test_the_file_limit_is_one_notice_and_later_files_have_no_data(pool, container, image) -> None:
    # small_set: 512 files. /d/0 is read in two steps: its second range, recorded after the
    # first file past the limit, tells us that file's ignore mark is in place.
    files = {f"/d/{i}": b"x" for i in range(520)} | {"/d/0": b"x" * 8192}
    c = container(image, files, workload(*(f"pread:/d/{i}:0:1" for i in range(513)), "pread:/d/0:4096:1",
                                         "signal:{note}", "wait:{go}", "pread:/d/512:0:1",
                                         *(f"pread:/d/{i}:0:1" for i in range(513, 520))))
    trace = phases(pool, c, small_set=True)
    seen(trace, lambda col: col.book.read_bytes("/d/0", 8192) == 8192)
    c.go()
    c.wait_note()
    trace.stop()
    assert trace.collector.notices == ["limit"]
    assert [f"/d/{i}" in trace.book for i in (0, 511, 512, 519)] == [True, True, False, False]
    # one event a file, none for the second read of the first file past the limit
    assert trace.collector.end.events == 520 + 1


def test_more_directories_than_the_mark_limit_is_unavailable(container, image) -> None:
    from nydus_top.tracing import range_session

    for d in ("a", "b", "c/d"):
        (image / d).mkdir(parents=True)
    c = container(image, {}, workload())
    c.wait_note()
    dirs = sum(1 for _ in os.walk(image))  # with /, /bin, /proc and /old of the container
    # in-process, the lower layer by its path from here
    session, pidfd = range_session.arm(c.pid, lowerdirs=(str(image),), max_marks=dirs)
    assert session.marks == dirs == 8
    session.close()
    os.close(pidfd)
    too_many = r"^ranges unavailable: the image has more than 7 directories$"
    with pytest.raises(range_session.RangeArmError, match=too_many):
        range_session.arm(c.pid, lowerdirs=(str(image),), max_marks=dirs - 1)
    c.go()


def test_a_reader_too_slow_for_our_lines_makes_ranges_stop_not_the_container(container, image, monkeypatch) -> None:
    import threading

    from nydus_top.tracing import range_session
    from nydus_top.tracing.range_tracer import RangeCollector, parse_range_line

    c = container(image, {f"/d/{i}": b"x" * 10 for i in range(8)},
                  workload(*(f"read:/d/{i}" for i in range(8))))
    c.wait_note()
    monkeypatch.setattr(range_session, "BACKLOG_MAX", 100)  # two file lines and a whole line
    session, pidfd = range_session.arm(c.pid, lowerdirs=(str(image),))
    out_r, out_w = os.pipe()
    stop_r, stop_w = os.pipe()
    os.set_blocking(out_w, False)
    # nobody reads out_r while the container runs: a full pipe must not hold its readers
    filled = 0
    try:
        while True:
            filled += os.write(out_w, b" " * 4096)
    except BlockingIOError:
        pass
    pump = threading.Thread(target=session.pump, args=(out_w, [stop_r], pidfd))
    pump.start()
    c.go()
    c.wait_note()  # all 8 files read: nothing waited for us
    os.close(stop_w)
    drained = b""
    while len(drained) < filled:
        drained += os.read(out_r, 1 << 16)
    pump.join(10)
    session.close()
    os.close(pidfd)
    os.close(out_w)
    rest = drained[filled:]
    while chunk := os.read(out_r, 1 << 16):
        rest += chunk
    collector = RangeCollector()
    collector.add([parse_range_line(line) for line in rest.splitlines()])
    # the lines that fitted, then the notice; the marks went at the limit
    assert collector.notices == ["backlog"] and collector.end.marks_left == 0
    kept, notice, _ = rest.partition(b'{"notice":"backlog"}')
    assert notice and 0 < len(kept) <= 100 and kept.endswith(b"\n")
    assert 0 < len(collector.book) < 8


def test_with_a_granularity_a_file_goes_quiet_once_its_touched_chunks_cover_it(pool, container, image) -> None:
    # 3 chunks of 64 KiB: one 4 KiB read in each covers the file once rounded; its later reads
    # make no events. The 4-chunk file misses one chunk and keeps its exact ranges.
    chunk = 64 * 1024
    c = container(image, {"/data/three": 3 * chunk, "/data/four": 4 * chunk},
                  workload("scatter:/data/three:65536:4096:3", "signal:{note}", "wait:{go}",
                           "scatter:/data/three:65536:4096:3", "scatter:/data/four:65536:4096:3"))
    trace = phases(pool, c, granularity=chunk)
    seen(trace, lambda col: "/data/three" in col.whole_why)
    c.go()
    c.wait_note()
    trace.stop()
    assert trace.book.get("/data/three") is None and trace.collector.whole_why == {"/data/three": "chunks"}
    assert trace.book.get("/data/four") == RangeSet((k * chunk, k * chunk + 4096) for k in range(3))
    assert trace.collector.end.events == 3 + 3
