"""Mapped pages of image files (nydus_top.tracing.mapped) through a real overlay: page faults make
no pre-access event, so the range tracer reads the container's page tables."""

from __future__ import annotations

import os
import subprocess

from nydus_top.lists.ranges import RangeSet
from nydus_top.tracing import mapped
from nydus_top.tracing.range_session import mount_namespace
from nydus_top.tracing.range_tracer import start_ranges

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


def test_at_the_file_limit_a_mapped_file_is_unobserved_and_said(container, image, ext4_layers, monkeypatch) -> None:
    # the sampler itself, in the test's process, against a real container's page tables
    monkeypatch.setattr(mapped, "MAX_FILES", 1)
    c = container(image, {"/data/a": MiB, "/data/b": MiB},
                  workload("maptouch:/data/a:0", "maptouch:/data/b:0"))
    c.wait_note()
    c.go()
    c.wait_note()
    procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        sampler = mapped.MappedSampler(procfd, mount_namespace(procfd, c.pid), os.stat(f"/proc/{c.pid}/root").st_dev)
        lines = sampler.sample()
    finally:
        os.close(procfd)
    first, second = sorted(("/data/a", "/data/b"), key=lambda p: b'"mapped": "%s"' % p.encode() not in lines[0])
    assert lines == [b'{"mapped": "%s", "off": 0, "len": 65536}\n' % first.encode(),  # the fault-around
                     b'{"unobserved": "%s", "why": "more than 1 mapped files"}\n' % second.encode()]
