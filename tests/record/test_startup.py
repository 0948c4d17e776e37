"""Zero-miss start-up capture on a real containerd: the tracer is in place before the entry point."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from nydus_top.model.node import NodeModel
from nydus_top.model.records import Access
from nydus_top.nri.session import PluginSession, SessionThread
from nydus_top.tracing.arming import StartTrace, StartupCapture, pool_starter, starts_of_image
from nydus_top.tracing.tracer import TracerPool
from testkit import workload
from testkit.harness import WORKLOAD_IMAGE, wait_exited

pytestmark = pytest.mark.every_containerd

STARTS = 20


class Armed:
    """An in-process NRI plugin whose StartupCapture traces every start of the workload image."""

    def __init__(self, nri_socket, *, hook_budget: float = 1.0, ranges: bool = False) -> None:
        self.pool = TracerPool()
        self.pool.warm_up()
        self.model = NodeModel()
        self.delivered: queue.Queue[StartTrace] = queue.Queue()
        self.capture = StartupCapture(pool_starter(self.pool, ranges=ranges))
        self.capture.arm(starts_of_image(WORKLOAD_IMAGE),
                         lambda _, st: self.delivered.put(st), once=False)
        synced = queue.Queue()
        self.model.subscribe(lambda ev: synced.put(ev.kind))
        session = PluginSession(self.model, str(nri_socket), "nydus-top-test", "50", hook_budget=hook_budget)
        session.add_start_hook(self.capture.on_start_container)
        self.thread = SessionThread(session)
        self.thread.start()
        assert synced.get(timeout=10) == "sync"

    def close(self) -> None:
        self.thread.stop()
        self.pool.close()


@pytest.fixture
def armed(sandbox_node, workload_image) -> Iterator[Armed]:
    armed = Armed(sandbox_node.nri_socket)
    yield armed
    armed.close()


def _start(cri, pod: str, name: str, command: list[str]) -> str:
    cid = cri.create_container(pod, name, WORKLOAD_IMAGE, command=command)
    cri.start_container(cid)
    return cid


def _accesses(start: StartTrace) -> list[Access]:
    assert start.trace.trace.wait(10), "trace did not end with the container"
    return [r for r in start.trace.records if isinstance(r, Access)]


def test_every_start_is_traced_from_the_entry_points_exec(sandbox_node, armed: Armed, pod: str) -> None:
    cri = sandbox_node.cri
    for i in range(STARTS):
        cid = _start(cri, pod, f"w{i}", workload.command("exit"))
        # The hook delivered before containerd got its answer, i.e. before StartContainer returned.
        start = armed.delivered.get_nowait()
        assert start.container.id == cid
        assert start.ready and not start.possibly_incomplete, start
        followed: list = []
        keep = i % 2 == 0  # the app follows with keep=False: its run owns the records
        start.trace.follow(followed.extend, keep=keep)  # what a UI sees live: everything so far, then the rest
        assert start.trace.trace.wait(10), "trace did not end with the container"
        assert followed == start.trace.records if keep else not start.trace.records
        records = [r for r in followed if isinstance(r, Access)]
        assert wait_exited(cri, cid) == 0  # before the next start, and before the pod goes
        assert (records[0].path, records[0].kind) == (workload.ENTRYPOINT, "exec"), records[:3]
        assert [r.path for r in records[1:]] == list(workload.STARTUP_FILES), f"start {i}"
        sizes = workload.file_sizes()
        assert all(r.size == sizes[r.path] for r in records[1:])
        assert [r.elapsed_us for r in records] == sorted(r.elapsed_us for r in records)
        assert start.trace.end_reason == "target-exited"
    assert armed.delivered.empty()


def test_a_late_tracer_answers_containerd_anyway_and_says_so(sandbox_node, workload_image, pod: str) -> None:
    # A start hook budget far below what arming takes: containerd is answered without waiting.
    late = Armed(sandbox_node.nri_socket, hook_budget=0.001)
    try:
        cid = _start(sandbox_node.cri, pod, "late", workload.command("exit", interval_us=5000))
        start = late.delivered.get(timeout=5)
        assert wait_exited(sandbox_node.cri, cid) == 0
        assert start.container.id == cid
        assert start.possibly_incomplete and start.trace is not None
        paths = [r.path for r in _accesses(start)]
        # What it did see is in order: the tail of the start-up list (the entry point's exec is gone).
        tail = [p for p in paths if p in workload.STARTUP_FILES]
        assert tail and tail == list(workload.STARTUP_FILES[len(workload.STARTUP_FILES) - len(tail):])
    finally:
        late.close()


def test_a_recording_that_may_miss_its_start_says_so_in_its_save_line(sandbox_node, workload_image, pod,
                                                                     tmp_path) -> None:
    from nydus_top.recording.recorder import Recorder, RecordSettings

    lines: queue.Queue[str] = queue.Queue()
    late = Armed(sandbox_node.nri_socket, hook_budget=0.001)
    recorder = Recorder(RecordSettings(tmp_path), lines.put, late.model)
    late.capture.disarm_all()
    late.capture.arm(recorder.select, recorder.deliver, once=False)
    late.model.subscribe(recorder.on_node_event)
    try:
        cid = _start(sandbox_node.cri, pod, "late-recorded", workload.command("exit", interval_us=5000))
        seen: list[str] = []
        while not seen or not seen[-1].startswith(("saved", "cannot record")):
            seen.append(lines.get(timeout=10))
        assert wait_exited(sandbox_node.cri, cid) == 0
    finally:
        late.close()
    assert len(seen) == 4, seen
    assert seen[0].startswith(f"recording record/record-test/late-recorded ({cid[:12]}) may miss its start-up: "
                              "tracer was not ready")
    assert seen[1] == (f"recording record/record-test/late-recorded ({cid[:12]}) into {tmp_path}/startup-workload:1"
                       " (mark late)")
    assert seen[2].startswith(f"kept run {tmp_path}/.nydus-top/image-runs/") and "possibly incomplete" in seen[2]
    assert seen[3].startswith(f"saved {tmp_path}/startup-workload:1.incomplete (")
    assert "POSSIBLY INCOMPLETE: tracer was not ready" in seen[3]
