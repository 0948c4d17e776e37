"""The recorder's log says what happened to a recording: the tracer's file limit is not "the kernel
lost files", a tracer killed by a signal is not "container exited"."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import time

import pytest
from record.test_startup import Armed

from nydus_top.model.node import Container, ContainerState
from nydus_top.recording.recorder import Recorder, RecordSettings
from nydus_top.tracing.arming import LiveTrace, StartTrace
from testkit import workload

EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


class _Knobs:
    """A tracer pool whose traces use the tracer's test knobs."""

    def __init__(self, pool, **knobs) -> None:
        self.pool, self.knobs = pool, knobs

    def start(self, pid: int, **kw):
        return self.pool.start(pid, **self.knobs, **kw)


def _record_home_made(pool, c, tmp_path, **knobs) -> list[str]:
    """Record a home-made container (tests/tracer) through the recorder; its log lines."""
    lines: list[str] = []
    ctr = Container("c" * 64, "p1", "many", "registry.local:5000/team/many:1", ContainerState.RUNNING, pid=c.pid)

    async def scenario() -> None:
        recorder = Recorder(RecordSettings(tmp_path), lines.append)
        plan = recorder.select(None, ctr)
        live = LiveTrace(_Knobs(pool, **knobs), c.pid)
        await live.wait_ready(5)
        recorder.deliver(plan, StartTrace(ctr, None, live, True, 1000))
        c.go()
        await asyncio.get_running_loop().run_in_executor(None, c.wait_note)
        await recorder.finish(ctr.id, "StopContainer")

    c.wait_note()
    asyncio.run(scenario())
    return lines


@pytest.mark.parametrize(("n", "knobs", "problem"), [
    (9000, {"small_set": True}, "tracer limit reached: {saved} files, later files are not traced"),
    (17000, {"bounded_queue": True}, "the kernel's event queue overflowed once from "),
], ids=["limit", "queue"])
def test_lost_files_are_named_by_why_they_were_lost(pool, container, tmp_path, n, knobs, problem) -> None:
    c = container({}, [f"mkmany:/many:{n}", "signal:{note}", "wait:{go}", f"openmany:/many:{n}", "signal:{note}",
                       "wait:{go}"])
    lines = _record_home_made(pool, c, tmp_path, **knobs)
    listed = tmp_path / "team" / "many:1.incomplete"
    saved = len(listed.read_text().splitlines())
    assert saved > 8000
    who = f"many ({'c' * 12})"
    assert lines[-1].startswith(f"saved {listed} ({saved} files, StopContainer) for {who}, not as "
                                f"{tmp_path}/team/many:1; POSSIBLY INCOMPLETE: {problem.format(saved=saved)}")
    if knobs.get("bounded_queue"):
        assert lines[-1].endswith(": an unknown number of files lost")
    else:  # said when it happens, too
        assert f"recording {who}: {problem.format(saved=saved)}" in lines[:-1]
    assert "the kernel lost" not in "\n".join(lines)


def test_a_tracer_killed_by_a_signal_is_not_a_container_exit(sandbox_node, workload_image, pod, tmp_path) -> None:
    lines: queue.Queue[str] = queue.Queue()
    armed = Armed(sandbox_node.nri_socket)
    recorder = Recorder(RecordSettings(tmp_path), lines.put, armed.model)
    armed.capture.disarm_all()
    armed.capture.arm(recorder.select, recorder.deliver, once=False)
    armed.model.subscribe(recorder.on_node_event)
    try:
        cid = sandbox_node.cri.create_container(pod, "killed", workload_image, command=workload.command("stay"))
        sandbox_node.cri.start_container(cid)
        sandbox_node.wait_for_log(cid, workload.DONE_LINE)
        # Every access must have reached the recording before its tracer dies: the container's done
        # line alone raced the tracer's pipe under load (28 of 45 files saved).
        recording = recorder.recordings[cid]
        give_up = time.monotonic() + 120  # far beyond any delay: the files come or the test says how many did
        while len(recording.files) < len(EXPECTED) and time.monotonic() < give_up:
            time.sleep(0.01)
        assert len(recording.files) == len(EXPECTED)
        os.kill(recording.trace.trace.tracer_pid, signal.SIGKILL)
        seen: list[str] = []
        while not seen or not seen[-1].startswith("saved"):
            seen.append(lines.get(timeout=10))
        assert sandbox_node.cri.container_status(cid).state == "RUNNING"
    finally:
        armed.close()
    who = f"record/record-test/killed ({cid[:12]})"
    assert seen[-1] == (f"saved {tmp_path}/startup-workload:1.incomplete ({len(EXPECTED)} files, tracer killed by "
                        f"signal SIGKILL) for {who}, not as {tmp_path}/startup-workload:1; POSSIBLY INCOMPLETE: "
                        "tracer killed by signal SIGKILL")


def test_a_file_whose_path_is_too_long_makes_the_recording_incomplete(pool, container, tmp_path) -> None:
    c = container({"/data/a": b"a"}, ["deep:20:create", "signal:{note}", "wait:{go}", "read:/data/a",
                                      "deep:20:read", "signal:{note}", "wait:{go}"])
    lines = _record_home_made(pool, c, tmp_path)
    listed = tmp_path / "team" / "many:1.incomplete"
    assert listed.read_text().splitlines() == ["/data/a"]
    assert lines[-1].startswith(f"saved {listed} (1 file, StopContainer) for many ({'c' * 12}), not as "
                                f"{tmp_path}/team/many:1; POSSIBLY INCOMPLETE: 1 file with a path longer than "
                                "PATH_MAX (4096 bytes) not recorded from ")
