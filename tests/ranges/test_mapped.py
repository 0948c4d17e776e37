"""Mapped pages of image files (nydus_top.tracing.mapped) through a real overlay: page faults make
no pre-access event, so the range tracer reads the container's page tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nydus_top._native import ffi, lib
from nydus_top.lists.ranges import RangeSet
from nydus_top.recording.recorder import mapped_notes
from nydus_top.tracing import mapped
from nydus_top.tracing.range_session import mount_namespace
from nydus_top.tracing.range_tracer import MAX_UNOBSERVED, RangeCollector, parse_range_line, start_ranges
from testkit import debian_numpy

from .test_range_tracer import ranged, seen, workload

MiB = 1 << 20
PAGE = 4096
FAULT_AROUND = 64 << 10  # the kernel maps up to this many bytes of cached pages around a fault
READAHEAD = 128 << 10


def pages(*offsets: int) -> RangeSet:
    return RangeSet((o - o % PAGE, o - o % PAGE + PAGE) for o in offsets)


def assert_covers_near(got: RangeSet | None, touched: RangeSet, k: int) -> None:
    """Every touched page is in ``got``, which holds at most k x 64 KiB + one readahead window."""
    assert got is not None
    assert got.union(touched) == got, f"missed: {touched} not in {got}"
    assert got.bytes <= k * FAULT_AROUND + READAHEAD, got


def test_an_image_file_starts_out_of_the_page_cache(container, image) -> None:
    # as a lazily pulled image's file at its first start; written warm, it may sit in 2 MiB folios
    # that one touch maps whole when the mapping happens to be 2 MiB aligned (a failure of CI)
    container(image, {"/m/cold": 4 * MiB, "/m/small": b"s" * 100}, workload())  # small: buffered, then flushed
    for name, size in (("cold", 4 * MiB), ("small", 100)):
        fd = os.open(image / "m" / name, os.O_RDONLY)
        try:
            out, left = ffi.new("unsigned long long[]", 2), ffi.new("long *", 10)
            assert lib.nt_cached_runs(fd, -(-size // PAGE), PAGE, out, 1, left) == 0, name
        finally:
            os.close(fd)


def test_read_then_mmap_keeps_the_mapped_pages_beside_the_header(pool, container, image) -> None:
    # safetensors-like: read the header, map the file, touch a few data pages far from it
    touched = (8 * MiB, 9 * MiB + 5, 12 * MiB + 4096, 15 * MiB)
    c = container(image, {"/m/model.safetensors": 16 * MiB},
                  workload("pread:/m/model.safetensors:0:4096",
                           f"maptouch:/m/model.safetensors:{','.join(map(str, touched))}"))
    trace = ranged(pool, c)
    got = trace.book.get("/m/model.safetensors")
    assert got is not None and got.union(pages(0)) == got  # the header read
    data = RangeSet(r for r in got if r[0] >= MiB)
    assert_covers_near(data, pages(*touched), len(touched))
    assert trace.collector.mapped_bytes() >= len(touched) * PAGE
    assert trace.collector.unobserved == {}


def test_a_file_only_mapped_lists_its_touched_pages_not_the_whole_file(pool, container, image) -> None:
    touched = (0, 3 * MiB, 30 * MiB + 100, 63 * MiB)
    c = container(image, {"/data/mapped": 64 * MiB}, workload(f"maptouch:/data/mapped:{','.join(map(str, touched))}"))
    trace = ranged(pool, c)
    assert_covers_near(trace.book.get("/data/mapped"), pages(*touched), len(touched))
    assert trace.collector.mapped.get("/data/mapped") == trace.book.get("/data/mapped")  # counted apart too


def test_elf_files_stay_whole_and_mapped_files_elsewhere_are_not_listed(pool, container, image) -> None:
    elf = b"\x7fELF" + b"\0" * (256 * 1024)
    c = container(image, {"/lib/libx.so": elf}, workload("pread:/lib/libx.so:0:832", "maptouch:/lib/libx.so:200000"))
    trace = ranged(pool, c)
    assert "/lib/libx.so" in trace.book and trace.book.get("/lib/libx.so") is None
    assert len(trace.collector.mapped) == 0


def _exec_in(c, *steps: str) -> subprocess.Popen:
    """A second process of the container (entered from outside) running probe ``steps``; it
    signals on its stdout and waits on its stdin."""
    return subprocess.Popen(["nsenter", "-t", str(c.pid), "-m", "-p", "-r", "-w", "--", "/probe", *steps],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_a_file_mapped_by_two_processes_has_the_pages_of_both(pool, container, image) -> None:
    c = container(image, {"/data/shared": 32 * MiB}, workload("maptouch:/data/shared:1048576"))
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    other = _exec_in(c, "maptouch:/data/shared:20971520,31457280", "signal:1", "wait:0")
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.read(1) == b"x"
    trace.stop()  # both still map the file: the last sample sees them
    other.stdin.close()
    other.wait()
    assert_covers_near(trace.book.get("/data/shared"), pages(MiB, 20 * MiB, 30 * MiB), 3)


def test_pages_of_a_process_that_mapped_and_exited_stay_recorded(pool, container, image) -> None:
    c = container(image, {"/data/brief": 8 * MiB}, workload())
    c.wait_note()
    trace = start_ranges(pool, c.pid)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    other = _exec_in(c, "maptouch:/data/brief:4194304", "signal:1", "wait:0")
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.read(1) == b"x"
    seen(trace, lambda col: "/data/brief" in col.mapped)  # a periodic sample saw it
    other.stdin.close()
    assert other.wait() == 3  # exited (EOF on its wait): its page tables are gone
    trace.stop()
    assert_covers_near(trace.book.get("/data/brief"), pages(4 * MiB), 1)


def test_pages_of_a_burst_of_short_lived_mappers_are_not_missed(pool, container, image) -> None:
    # a header read, then 12 processes that each map the file, touch one page and exit at once:
    # gone long before a sample; what they faulted in is found in the lower file's page cache
    touched = [(8 + 4 * k) * MiB + 4096 * k for k in range(12)]
    c = container(image, {"/m/w.bin": 64 * MiB}, workload("pread:/m/w.bin:0:4096",
                                                          f"mapburst:/m/w.bin:{','.join(map(str, touched))}"))
    trace = ranged(pool, c)
    got = trace.book.get("/m/w.bin")
    assert got is not None and got.union(pages(0, *touched)) == got, f"missed: {got}"
    assert trace.collector.cached_bytes() >= len(touched) * PAGE  # counted apart
    assert "page cache: " in "; ".join(mapped_notes(trace.collector))


def test_pages_cached_only_next_to_the_reads_are_taken_for_readahead(pool, container, image) -> None:
    c = container(image, {"/m/r.bin": 16 * MiB}, workload("pread:/m/r.bin:4194304:4096"))
    trace = ranged(pool, c)
    assert trace.book.get("/m/r.bin") == pages(4 * MiB)  # exact: its readahead is not added
    assert trace.collector.cached_bytes() == 0


def test_past_the_file_limit_of_the_page_cache_a_file_is_said_unobserved(pool, container, image) -> None:
    # the limit of the small-set knob: NT_CACHE_FILES reads under load made the watchdog's 100 ms
    # bound likely to end the trace somewhere (the same code, another number)
    n = lib.NT_CACHE_FILES_SMALL
    files: dict[str, bytes | int] = {f"/many/{i}": b"x" for i in range(n + 1)}
    c = container(image, files, workload(f"readmany:/many:{n}"))
    c.wait_note()
    trace = start_ranges(pool, c.pid, small_set=True)
    trace.wait_ready(5)
    c.go()
    c.wait_note()  # /probe (ELF: whole, no fd kept) and /many/0..n-1: at the limit; one more from outside
    other = _exec_in(c, f"read:/many/{n}", "signal:1", "wait:0")
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.read(1) == b"x"
    trace.stop()
    other.stdin.close()
    other.wait()
    assert trace.collector.cache_unobserved.startswith("the page cache of 1 file seen was not followed")


def test_a_file_too_fragmented_in_the_page_cache_when_first_read_is_said_unobserved(pool, container, image) -> None:
    c = container(image, {"/m/frag": 4 * MiB}, workload("pread:/m/frag:0:4096"))
    fd = os.open(image / "m/frag", os.O_RDONLY)
    try:  # every other page of the file's second half cached: more runs than a first look may read
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in range(512, 1024, 2):
            os.pread(fd, 1, page * PAGE)
    finally:
        os.close(fd)
    trace = ranged(pool, c)
    assert trace.book.get("/m/frag") == pages(0)
    assert trace.collector.cache_unobserved.startswith("the page cache of 1 file seen was not followed")


def test_numpy_load_with_mmap_mode_keeps_the_pages_it_touched(pool, container, image) -> None:
    # Debian's python3-numpy in the image; a 16 MiB float64 array loaded with mmap_mode='r' (its
    # header read, its data mapped) and four values touched far apart
    shutil.copytree(debian_numpy.numpy_root(), image, symlinks=True, dirs_exist_ok=True)
    rows, picked = 2 * MiB, (300_000, 700_001, 1_200_000, 2 * MiB - 1)
    header = debian_numpy.npy_header(rows)
    code = ("import numpy, os, sys; a = numpy.load('/m/a.npy', mmap_mode='r'); "
            f"s = sum(float(a[i]) for i in {list(picked)}); "
            "os.write(int(sys.argv[1]), b'x'); os.read(int(sys.argv[2]), 1)").replace("{", "{{").replace("}", "}}")
    c = container(image, {"/m/a.npy": header + os.urandom(8 * rows)},
                  ["signal:{note}", "wait:{go}", f"exec:{debian_numpy.PYTHON}", "-I", "-c", code, "{note}", "{go}"])
    try:
        trace = ranged(pool, c)
        got = trace.book.get("/m/a.npy")
        touched = pages(*(len(header) + 8 * i for i in picked))
        assert got is not None and got.union(touched) == got and got.union(pages(0)) == got, f"missed: {got}"
        assert trace.collector.mapped.get("/m/a.npy") is not None  # its pages seen mapped
    finally:
        c.finish()
        shutil.rmtree(image)  # 70 MB of the layers' shared file system


def _sample(c) -> list[bytes]:
    """One sample of the container's page tables by a sampler in the test's own process."""
    c.wait_note()
    c.go()
    c.wait_note()
    procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        root_dev = os.stat(f"/proc/{c.pid}/root").st_dev
        sampler = mapped.MappedSampler(procfd, mount_namespace(procfd, c.pid), root_dev)
        return sampler.sample()
    finally:
        sampler.close()


def test_at_the_range_limit_a_mapped_file_is_unobserved_and_said(container, image, monkeypatch) -> None:
    monkeypatch.setattr(mapped, "MAX_RANGES", 2)
    c = container(image, {"/data/r": 8 * MiB}, workload("maptouch:/data/r:0,2097152,4194304"))
    lines = _sample(c)
    assert len(lines) == 3 and lines[2] == b'{"unobserved": "/data/r", "why": "more than 2 mapped ranges"}\n'


def test_at_the_page_limit_of_a_sample_a_mapped_file_is_unobserved_and_said(container, image, monkeypatch) -> None:
    monkeypatch.setattr(mapped, "MAX_SAMPLE_PAGES", 256)
    c = container(image, {"/data/fits": MiB, "/data/big": MiB + 4096},
                  workload("maptouch:/data/fits:0", "maptouch:/data/big:0"))
    lines = _sample(c)
    assert b'{"unobserved": "/data/big", "why": "more than 256 mapped pages in one sample"}\n' in lines
    assert any(line.startswith(b'{"mapped": "/data/fits", "off": 0, "len": ') for line in lines)


def test_at_the_file_limit_a_mapped_file_is_unobserved_and_said(container, image, monkeypatch) -> None:
    # the sampler itself, in the test's process, against a real container's page tables
    monkeypatch.setattr(mapped, "MAX_FILES", 1)
    c = container(image, {"/data/a": MiB, "/data/b": MiB},
                  workload("maptouch:/data/a:0", "maptouch:/data/b:0"))
    lines = _sample(c)
    first, second = sorted(("/data/a", "/data/b"), key=lambda p: b'"mapped": "%s"' % p.encode() not in lines[0])
    assert len(lines) == 2 and lines[0].startswith(b'{"mapped": "%s", "off": 0, "len": ' % first.encode())
    assert lines[1] == b'{"unobserved": "%s", "why": "more than 1 mapped files"}\n' % second.encode()


def _collect(*lines: bytes) -> RangeCollector:
    col = RangeCollector()
    col.add([parse_range_line(line) for line in lines])
    return col


def test_mapped_pages_join_the_reads_and_are_counted_apart_in_the_log() -> None:
    col = _collect(b'{"file": 0, "path": "/m/w", "size": 16777216}', b'{"file": 0, "off": 0, "len": 4096}',
                   b'{"mapped": "/m/w", "off": 8388608, "len": 65536}', b'{"mapped": "/m/w", "off": 0, "len": 8192}',
                   b'{"file": 1, "path": "/lib/x.so", "size": 9000}', b'{"file": 1, "whole": "mapped"}',
                   b'{"mapped": "/lib/x.so", "off": 0, "len": 4096}')
    assert col.book.get("/m/w") == RangeSet([(0, 8192), (8 * MiB, 8 * MiB + 65536)])
    assert col.book.get("/lib/x.so") is None and "/lib/x.so" not in col.mapped  # whole: nothing apart
    assert col.mapped_bytes() == 65536 + 8192
    assert mapped_notes(col) == ["mapped: 72.0 KiB"]


def test_an_unobserved_file_counts_whole_and_the_log_names_it_up_to_the_limit() -> None:
    lines = [b'{"mapped": "/a", "off": 0, "len": 4096}', b'{"unobserved": "/a", "why": "more than 1 mapped files"}']
    lines += [b'{"unobserved": "/f%d\\n", "why": "x"}' % i for i in range(MAX_UNOBSERVED + 5)]
    col = _collect(*lines)
    assert col.book.get("/a") is None and col.whole_why["/a"] == "unobserved"
    assert "/f68\n" in col.book and col.book.get("/f68\n") is None  # past the named ones: still whole
    assert len(col.unobserved) == MAX_UNOBSERVED
    notes = mapped_notes(col)
    assert notes[1].startswith("mapped pages unobserved (counted whole): /a: more than 1 mapped files, /f0")
    assert "\n" not in notes[1]


def test_a_failed_sample_makes_every_file_seen_mapped_whole() -> None:
    col = _collect(b'{"file": 0, "path": "/r", "size": 9000000}', b'{"file": 0, "off": 0, "len": 4096}',
                   b'{"mapped": "/m", "off": 0, "len": 4096}',
                   b'{"unobserved": "", "why": "the last sample took more than 2 s"}')
    assert col.book.get("/m") is None and col.whole_why["/m"] == "unobserved"
    assert col.book.get("/r") == RangeSet([(0, 4096)])  # never seen mapped: its reads stand
    assert mapped_notes(col) == ["mapped: 0 B",
                                 "mapped pages unobserved (counted whole): (all): the last sample took more than 2 s"]


def _sampler_child(case: str) -> dict[str, object]:
    """What a sampler gave in a fresh interpreter (see tests/ranges/sampler_child.py for why)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([sys.executable, "-I", str(Path(__file__).with_name("sampler_child.py")), case],
                          capture_output=True, text=True, env=env, cwd="/", timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_sampler_that_dies_is_said_and_not_waited_on() -> None:
    got = _sampler_child("crash")
    assert got == {"woke": True, "taken": "", "ended": True,
                   "finish": '{"unobserved": "", "why": "the sampler ended early (status 1792)"}\n'}


def test_page_runs_follow_the_present_bit_only() -> None:
    present, swapped_only, soft_dirty = 1 << 63, 1 << 62, 1 << 55
    entries = [present | 5, present, 0, swapped_only, present | soft_dirty, soft_dirty, present]
    data = b"".join(e.to_bytes(8, "little") for e in entries)
    assert mapped._page_runs(data, 100) == [(100, 102), (104, 105), (106, 107)]
    assert mapped._page_runs(b"", 0) == [] and mapped._page_runs(bytes(8 * 3), 0) == []


def test_the_end_of_a_trace_does_not_wait_for_a_stuck_sample() -> None:
    got = _sampler_child("stuck")
    assert got == {"woke": True, "reaped": True,
                   "finish": ('{"mapped": "/x", "off": 0, "len": 4096}\n'
                              '{"unobserved": "", "why": "the last sample took more than 0.2 s"}\n')}
