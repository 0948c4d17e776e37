"""A recording keeps its files compactly and within a limit, and says when it reaches it."""

from __future__ import annotations

import queue

from record.test_startup import Armed

from nydus_top.lists.compact import PER_FILE
from nydus_top.recording.recorder import Recorder, RecordSettings
from testkit import workload
from testkit.harness import wait_exited

EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


def test_a_recording_at_its_memory_limit_keeps_its_first_files_and_says_so(sandbox_node, workload_image, pod,
                                                                          tmp_path) -> None:
    kept = 10
    limit = sum(len(p.encode()) + PER_FILE for p in EXPECTED[:kept]) + PER_FILE  # the 11th does not fit
    lines: queue.Queue[str] = queue.Queue()
    armed = Armed(sandbox_node.nri_socket)
    recorder = Recorder(RecordSettings(tmp_path, max_bytes=limit), lines.put, armed.model)
    armed.capture.disarm_all()
    armed.capture.arm(recorder.select, recorder.deliver, once=False)
    armed.model.subscribe(recorder.on_node_event)
    try:
        cid = sandbox_node.cri.create_container(pod, "limited", workload_image, command=workload.command("exit"))
        sandbox_node.cri.start_container(cid)
        seen: list[str] = []
        while not seen or not seen[-1].startswith(("saved", "cannot record")):
            seen.append(lines.get(timeout=10))
        assert wait_exited(sandbox_node.cri, cid) == 0
    finally:
        armed.close()
    who = f"record/record-test/limited ({cid[:12]})"
    assert seen[1] == (f"recording {who} reached its limit of {limit} bytes in memory with {kept} files: "
                       "later files are not recorded")
    # Kept as a run that says so, and saved beside the list (the trace's end and StopContainer race
    # to end the recording).
    assert seen[2].startswith(f"kept run {tmp_path}/.nydus-top/image-runs/") and seen[2].endswith(
        f" ({kept} files, possibly incomplete) for {who}")
    assert seen[3].startswith(f"saved {tmp_path}/startup-workload:1.incomplete ({kept} files, ")
    assert seen[3].endswith(f") for {who}, not as {tmp_path}/startup-workload:1; POSSIBLY INCOMPLETE: "
                            f"memory limit reached: {kept} files in {limit} bytes,"
                            f" {len(EXPECTED) - kept} more not recorded")
    assert len(seen) == 4
    assert (tmp_path / "startup-workload:1.incomplete").read_text().splitlines() == EXPECTED[:kept]
