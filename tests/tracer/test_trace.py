"""Traces of home-made containers by pid, through the host API (real fanotify, real namespaces)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from nydus_top.model.records import Access, Overflow
from nydus_top.tracing.tracer import Trace, TracerError, TracerPool


# The container signals once set up, waits for "go", runs the workload, signals, waits again.
def workload(*steps: str) -> list[str]:
    return ["signal:{note}", "wait:{go}", *steps, "signal:{note}", "wait:{go}"]


def traced(pool: TracerPool, c, **kw) -> tuple[Trace, list[Access | Overflow]]:
    """Arm on the set-up container, let the workload run, stop (drain) and collect records."""
    c.wait_note()
    trace = pool.start(c.pid, **kw)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    trace.stop()
    return trace, [r for batch in trace for r in batch]


def accesses(records: list) -> list[tuple[str, str]]:
    return [(r.path, r.kind) for r in records if isinstance(r, Access)]


def test_exact_files_in_order_from_the_first_exec(pool, container) -> None:
    # pid 1 is blocked before its exec, like runc init: the exec is the first thing after ready.
    c = container({"/etc/a.conf": b"alpha", "/data/b.bin": b"b" * 5000, "/data/unread": b"x"},
                  workload("exec:/bin/tool", "read:/etc/a.conf", "open:/data/b.bin",
                           "read:/etc/a.conf", "read:/data/b.bin"))
    trace, records = traced(pool, c)
    assert accesses(records) == [("/bin/tool", "exec"), ("/etc/a.conf", "open"), ("/data/b.bin", "open")]
    assert [r.seq for r in records] == [0, 1, 2]
    assert [r.size for r in records] == [os.path.getsize(c.root / "lower/bin/tool"), 5, 5000]
    assert {r.pid for r in records} == {c.pid}  # the host pid
    # comm is read when the tracer sees the event: during the exec it may still be the old name
    assert records[0].comm in ("probe", "tool") and {r.comm for r in records[1:]} == {"tool"}
    elapsed = [r.elapsed_us for r in records]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert trace.end_reason == "stopped" and trace.error is None


def test_the_mark_says_its_wall_clock_time_so_records_can_be_placed_in_it(pool, container) -> None:
    """A ready line's time (containerd's wall clock) is compared with records' elapsed_us."""
    c = container({"/etc/a.conf": b"alpha"}, workload("read:/etc/a.conf"))
    c.wait_note()
    before = time.clock_gettime_ns(time.CLOCK_REALTIME)
    trace = pool.start(c.pid)
    trace.wait_ready(5)
    armed = time.clock_gettime_ns(time.CLOCK_REALTIME)
    c.go()
    c.wait_note()
    trace.stop()
    records = [r for batch in trace for r in batch]
    assert trace.mark_ns is not None and before <= trace.mark_ns <= armed
    assert records and all(trace.mark_ns + r.elapsed_us * 1000 <= time.clock_gettime_ns(time.CLOCK_REALTIME)
                           for r in records)
    assert trace.end_reason == "stopped" and trace.error is None


def test_hostile_names_round_trip(pool, container) -> None:
    names = ["/data/with space.txt", "/data/ünïcødé 文件", os.fsdecode(b"/data/bad\xff\xfe\xc3("),
             "/data/new\nline\t\"quoted\"\\", "/data/-"]
    c = container({n: b"z" for n in names}, workload(*(f"read:{n}" for n in names)))
    _, records = traced(pool, c)
    assert [r.path for r in records] == names
    assert os.fsencode(records[2].path) == b"/data/bad\xff\xfe\xc3("


def test_symlinks_resolve_to_their_targets(pool, container) -> None:
    c = container({"/data/real": b"r", "/lib/abs-link": "/data/real", "/lib/rel-link": "../data/other",
                   "/data/other": b"o"},
                  workload("read:/lib/abs-link", "read:/lib/rel-link", "read:/data/real"))
    _, records = traced(pool, c)
    assert accesses(records) == [("/data/real", "open"), ("/data/other", "open")]


def test_file_deleted_right_after_it_was_read(pool, container) -> None:
    # The test knob holds the tracer until stop, so both files are gone when their paths resolve.
    c = container({"/data/gone": b"g"},
                  workload("read:/data/gone", "rm:/data/gone", "mkmany:/tmpdir:1", "read:/tmpdir/0",
                           "rm:/tmpdir/0"))
    _, records = traced(pool, c, bounded_queue=True)
    assert accesses(records) == [("/data/gone", "open"), ("/tmpdir/0", "open")]


def test_overflow_is_an_explicit_record(pool, container) -> None:
    # 17000 opens of distinct files exceed the kernel's default queue of 16384 events.
    c = container({}, ["mkmany:/many:17000", *workload("openmany:/many:17000")])
    _, records = traced(pool, c, bounded_queue=True)
    overflows = [r for r in records if isinstance(r, Overflow)]
    assert len(overflows) == 1 and overflows[0].reason == "queue"
    assert 16000 < len(records) - 1 < 17000


def test_container_exit_ends_the_trace_with_its_records(pool, container) -> None:
    c = container({"/data/last": b"l"}, ["signal:{note}", "wait:{go}", "read:/data/last"])
    c.wait_note()
    trace = pool.start(c.pid)
    trace.wait_ready(5)
    c.go()
    assert trace.wait(10)
    assert c.finish() == 0
    assert accesses([r for b in trace for r in b]) == [("/data/last", "open")]
    assert trace.end_reason == "target-exited"


def test_tracer_is_invisible_in_the_container_pid_namespace(pool, container) -> None:
    c = container({}, ["signal:{note}", "wait:{go}", "pids:{note}", "wait:{go}"])
    c.wait_note()
    trace = pool.start(c.pid)
    trace.wait_ready(5)
    c.go()
    assert c.wait_note().split() == [b"1"]  # pid 1 writes /proc's entries, then closes the fd
    ns = lambda pid, kind: os.readlink(f"/proc/{pid}/ns/{kind}")  # noqa: E731
    assert ns(trace.tracer_pid, "mnt") == ns(c.pid, "mnt")
    assert ns(trace.tracer_pid, "pid") == ns(os.getpid(), "pid") != ns(c.pid, "pid")
    trace.stop()


def test_no_fd_or_process_leaked_after_100_traces(pool, container) -> None:
    c = container({"/data/f": b"f"}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    helper = pool._proc.pid
    fds = lambda pid: os.listdir(f"/proc/{pid}/fd")  # noqa: E731
    mntns = os.readlink(f"/proc/{c.pid}/ns/mnt")

    def in_container_mntns() -> set[int]:
        pids = set()
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{p}/ns/mnt") == mntns:
                    pids.add(int(p))
            except OSError:  # gone, or not ours to inspect (the VM's own pid 1)
                continue
        return pids

    before = sorted(fds("self"))
    for _ in range(100):
        trace = pool.start(c.pid)
        trace.wait_ready(5)
        trace.stop()  # returns once the tracer process is gone
        assert trace.end_reason == "stopped"
    assert sorted(fds("self")) == before
    assert in_container_mntns() == {c.proc.pid, c.pid}  # launcher and pid 1: every tracer exited
    # 0-2, the socket, its wake-up pipe, the socket to the spare it may be forking right now and the
    # status pipe of the last tracer, which it may still be reaping
    assert len(fds(helper)) <= 8


def test_traces_that_end_at_once_keep_the_helper_and_every_request(pool) -> None:
    # A tracer that fails at once can end before the helper has read that it took its request.
    # The helper used to take that end for a spare dying unused and exit: a request sent to it
    # meanwhile was lost ("tracer ended without a status") and the next start paid for a new helper.
    helper = pool._proc.pid
    for _ in range(100):
        trace = pool.start(2**22 + 1)
        with pytest.raises(TracerError, match="pid 4194305: No such process"):
            trace.wait_ready(5)
        assert trace.wait(5) and trace.end_reason == "error"
    assert pool._proc.pid == helper


def test_unknown_pid_is_a_clear_error(pool) -> None:
    trace = pool.start(2**22 + 1)
    with pytest.raises(TracerError, match="pid 4194305"):
        trace.wait_ready(5)
    assert trace.wait(5) and trace.end_reason == "error"


def test_arming_from_asyncio_and_callbacks(pool, container) -> None:
    c = container({"/data/x": b"x"}, workload("read:/data/x"))
    c.wait_note()
    got: list = []

    async def arm() -> Trace:
        trace = pool.start(c.pid, on_batch=got.extend)
        await trace.wait_ready_async(5)
        return trace

    trace = asyncio.run(arm())
    c.go()
    c.wait_note()
    trace.stop()
    assert accesses(got) == [("/data/x", "open")]


def test_no_import_after_joining_a_container(container) -> None:
    # After setns, module paths resolve in the container: an import there would run its code.
    c = container({"/evil.py": b"raise SystemExit('container code ran')"}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    probe = (f"import os, sys; from nydus_top.tracing import file_session as t; t.arm({c.pid}); "
             "sys.path.insert(0, '/'); print(os.path.exists('/probe'), flush=True)\n"
             "try:\n    import evil\nexcept ImportError:\n    print('sealed', flush=True)\nos._exit(0)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["True", "sealed"], out.stderr


# -- hostile containers ----------------------------------------------------------------------------

def test_stop_ends_the_trace_of_a_container_that_never_stops_creating_files(pool, container) -> None:
    # Eight processes create new files as fast as they can, forever: the stop must still end the
    # trace (the drain at stop takes what was queued when it came, not what keeps coming).
    c = container({}, ["signal:{note}", "wait:{go}", "spam:/spam:8"])
    c.wait_note()
    trace = pool.start(c.pid)
    trace.wait_ready(5)
    c.go()
    try:
        records = next(trace.batches(timeout=10))  # it is streaming
        trace.stop(timeout=10)
    finally:
        os.kill(c.pid, signal.SIGKILL)  # pid 1 of the container: its pid namespace goes with it
    records += [r for batch in trace for r in batch]
    assert trace.end_reason == "stopped"
    seqs = [r.seq for r in records if isinstance(r, Access)]
    assert len(seqs) > 1 and seqs == list(range(len(seqs)))


def fanotify_inode_marks(pid: int) -> int:
    """Inode marks (our ignore marks) of the fanotify groups held by process ``pid``."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                count += sum(line.startswith("fanotify ino:") for line in f)
        except OSError:
            continue
    return count


def test_the_distinct_file_limit_is_one_overflow_and_silences_what_it_cannot_report(pool, container) -> None:
    # Test knob: the tracer's set of seen files stops at 8192. The 808 files beyond are lost
    # (one "limit" overflow) and get an ignore mark at their first event, so a container that
    # re-opens them forever costs neither itself nor the tracer an event each. (The known files
    # get theirs after repeats, unless the kernel merged their queued events.)
    n, limit = 9000, 8192
    c = container({}, [f"mkmany:/many:{n}", *workload(*[f"openmany:/many:{n}"] * 3)])
    c.wait_note()
    trace = pool.start(c.pid, small_set=True)
    trace.wait_ready(5)
    c.go()
    c.wait_note()
    deadline = time.monotonic() + 20  # await the tracer's state: the marks follow the events
    while fanotify_inode_marks(trace.tracer_pid) < n - limit and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fanotify_inode_marks(trace.tracer_pid) >= n - limit
    trace.stop()
    records = [r for batch in trace for r in batch]
    assert [type(r) for r in records] == [Access] * limit + [Overflow]
    assert records[-1].reason == "limit"
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in records[:-1]) == list(range(limit))


def test_a_stop_that_times_out_kills_the_tracer(pool, container) -> None:
    # The consumer is stuck in its callback: the stream pipe fills, the tracer blocks writing
    # to it and cannot drain. stop() gives up after its timeout, and no tracer is left behind.
    c = container({}, ["mkmany:/many:3000", *workload("openmany:/many:3000")])
    c.wait_note()
    release = threading.Event()
    trace = pool.start(c.pid, on_batch=lambda batch: release.wait())
    trace.wait_ready(5)
    tracer = os.pidfd_open(trace.tracer_pid)
    try:
        c.go()
        c.wait_note()
        with pytest.raises(TimeoutError, match="did not stop"):
            trace.stop(timeout=1)
        assert select.select([tracer], [], [], 0)[0]  # the tracer has exited
    finally:
        release.set()
        os.close(tracer)
    assert trace.wait(10) and trace.end_reason == "error"


def test_no_traceback_reads_the_container_after_joining_it(container) -> None:
    # Python prints a traceback with source lines read by file name: after setns that name
    # resolves in the container, which can plant its own text (or a FIFO) there. A bad stop fd
    # makes the tracer fail after joining; it must report it on the status fd, not raise.
    from nydus_top.tracing import file_session as trace_session
    planted = b"".join(b"PLANTED %d\n" % i for i in range(1000))
    c = container({trace_session.__file__: planted}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    probe = (f"import os; from nydus_top.tracing import file_session as t; r, w = os.pipe()\n"
             f"code = t.run({c.pid}, out_fd=1, status_fd=w, stop_fd=-1)\n"
             "os.write(2, os.read(r, 100)); os._exit(code)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30)
    assert b"PLANTED" not in out.stderr
    assert out.returncode == 2 and out.stderr.startswith(b"R") and b"Etracer: ValueError" in out.stderr


def test_a_pid_outside_the_expected_container_is_refused(pool, container) -> None:
    # A pid learnt earlier may belong to another process by now (say one on the host): with the
    # container's id the tracer checks the pid's cgroups before joining anything.
    c = container({"/data/x": b"x"}, workload("read:/data/x"))
    c.wait_note()
    cid = os.urandom(32).hex()
    wrong = pool.start(c.pid, container_id=cid)
    with pytest.raises(TracerError, match=f"pid {c.pid} is not in container {cid[:12]}"):
        wrong.wait_ready(5)
    # A cgroup named for it, like containerd's: in the v1 pids hierarchy or else in the v2 one.
    root = next(d for d in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                if os.path.exists(f"{d}/cgroup.procs"))
    group = f"{root}/nydus-top-test-{cid}"
    os.mkdir(group)
    try:
        with open(f"{group}/cgroup.procs", "w") as f:
            f.write(str(c.pid))
        trace = pool.start(c.pid, container_id=cid)
        trace.wait_ready(5)
        c.go()
        c.wait_note()
        trace.stop()
        assert accesses([r for b in trace for r in b]) == [("/data/x", "open")]
    finally:
        with open(f"{root}/cgroup.procs", "w") as f:
            f.write(str(c.pid))
        os.rmdir(group)


def test_a_file_whose_path_is_too_long_to_name_is_a_lost_record(pool, container) -> None:
    # /deep + 20 directories of 255 characters: over PATH_MAX, so the kernel cannot name the file.
    c = container({"/data/before": b"b", "/data/after": b"a"},
                  ["deep:20:create", *workload("read:/data/before", "deep:20:read", "deep:20:read",
                                               "read:/data/after")])
    _, records = traced(pool, c)
    assert accesses(records) == [("/data/before", "open"), ("/data/after", "open")]
    [lost] = [r for r in records if isinstance(r, Overflow)]
    assert (lost.reason, lost.lost) == ("path too long", 1)  # read twice, one file


def test_a_short_lived_process_is_named_after_what_it_executed(pool, container) -> None:
    # The test knob holds the tracer until stop: the child has exec'd and exited before its
    # events are read, so /proc has no comm for it any more.
    c = container({"/data/f": b"f"}, workload("run:/bin/tool", "read:/data/f"))
    _, records = traced(pool, c, bounded_queue=True)
    assert accesses(records) == [("/bin/tool", "exec"), ("/data/f", "open")]
    child, parent = records
    assert child.pid != parent.pid
    assert (child.comm, parent.comm) == ("tool", "probe")


def test_a_burst_of_short_lived_readers_of_one_binary_keeps_their_names(pool, container) -> None:
    # Like the demo's `cat`s: each child execs the same binary (reported once) and reads one file,
    # and all have exited before the held tracer reads their events. Each read names its reader.
    files = [f"/data/f{i}" for i in range(6)]
    c = container(dict.fromkeys(files, b"f"), workload(*(f"spawn:/bin/tool:{f}" for f in files)))
    _, records = traced(pool, c, bounded_queue=True)
    reads = [r for r in records if isinstance(r, Access) and r.path.startswith("/data/")]
    assert [r.path for r in reads] == files
    assert len({r.pid for r in reads}) == len(files)
    assert [r.comm for r in reads] == ["tool"] * len(files)
