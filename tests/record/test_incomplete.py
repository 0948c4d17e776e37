"""A recording flagged POSSIBLY INCOMPLETE never replaces a complete list and never blocks a later
recording of its image: it is saved beside, as ``<list>.incomplete``, and the log says so."""

from __future__ import annotations

import json
import queue

from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import load_list, ranges_path
from nydus_top.recording.recorder import Recorder, RecordSettings
from nydus_top.runs import store as runstore
from testkit import workload
from testkit.harness import WORKLOAD_IMAGE, wait_exited

from .test_startup import Armed

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


def _record(node, pod: str, name: str, settings: RecordSettings, *, hook_budget: float) -> tuple[str, list[str]]:
    """One start of the workload recorded in-process; (container id, the recorder's log lines)."""
    lines: queue.Queue[str] = queue.Queue()
    armed = Armed(node.nri_socket, hook_budget=hook_budget, ranges=settings.range_list)
    recorder = Recorder(settings, lines.put, armed.model)
    armed.capture.disarm_all()
    armed.capture.arm(recorder.select, recorder.deliver, once=False)
    armed.model.subscribe(recorder.on_node_event)
    try:
        cid = node.cri.create_container(pod, name, WORKLOAD_IMAGE, command=workload.command("exit", interval_us=5000))
        node.cri.start_container(cid)
        seen: list[str] = []
        while not seen or not (seen[-1].startswith(("saved", "not recording", "cannot record"))
                                or "not saved" in seen[-1] or "NOT SAVED" in seen[-1]):
            seen.append(lines.get(timeout=10))
        assert wait_exited(node.cri, cid) == 0
    finally:
        armed.close()
    return cid, seen


def test_a_late_recording_is_saved_beside_and_the_next_one_is_not_blocked(sandbox_node, workload_image, pod,
                                                                          tmp_path) -> None:
    settings = RecordSettings(tmp_path)  # overwrite = false: an image is recorded once
    cid, seen = _record(sandbox_node, pod, "late", settings, hook_budget=0.001)
    saved = seen[-1]
    assert saved.startswith(f"saved {tmp_path}/{RESULT}.incomplete (")
    assert f", not as {tmp_path}/{RESULT}; POSSIBLY INCOMPLETE: tracer was not ready" in saved
    assert not (tmp_path / RESULT).exists()
    meta = listmeta.read(tmp_path / f"{RESULT}.incomplete")
    assert not meta.complete and meta.incomplete.startswith("tracer was not ready") and meta.container_id == cid
    assert (tmp_path / f"{RESULT}.incomplete.csv").exists()

    cid, seen = _record(sandbox_node, pod, "on-time", settings, hook_budget=1.0)
    # (the trace's end and containerd's StopContainer race: either ends the recording)
    assert seen[-1].startswith(f"saved {tmp_path}/{RESULT} ({len(EXPECTED)} files, ")
    assert seen[-1].endswith(f") for record/record-test/on-time ({cid[:12]})")
    assert (tmp_path / RESULT).read_text().splitlines() == EXPECTED
    assert listmeta.read(tmp_path / RESULT).complete
    # Both starts are kept as runs, the late one saying so.
    runs = runstore.runs_of(runstore.image_dir(tmp_path, workload_image))
    assert [listmeta.read(run).complete for run in runs] == [False, True]


def test_a_late_recording_never_replaces_a_complete_list(sandbox_node, workload_image, pod, tmp_path) -> None:
    good = tmp_path / RESULT
    good.write_text("".join(f"{p}\n" for p in EXPECTED))
    good.with_name(f"{RESULT}.csv").write_text("path,size,elapsed\n")
    before = good.read_bytes()
    _, seen = _record(sandbox_node, pod, "late-over", RecordSettings(tmp_path, overwrite=True), hook_budget=0.001)
    assert seen[-1].startswith(f"saved {tmp_path}/{RESULT}.incomplete (")
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".nydus-top") == [
        RESULT, f"{RESULT}.csv", f"{RESULT}.incomplete", f"{RESULT}.incomplete.csv",
        f"{RESULT}.incomplete.nydus-top.json"]


def test_a_late_recording_with_ranges_saves_its_range_list_beside_too(sandbox_node, workload_image, pod,
                                                                      tmp_path) -> None:
    _, seen = _record(sandbox_node, pod, "late-ranges", RecordSettings(tmp_path, range_list=True), hook_budget=0.001)
    assert seen[-1].startswith(f"saved {tmp_path}/{RESULT}.incomplete (")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".nydus-top") == [
        f"{RESULT}.incomplete", f"{RESULT}.incomplete.csv", f"{RESULT}.incomplete.nydus-top.json",
        f"{RESULT}.incomplete.ranges.json"]
    listed = (tmp_path / f"{RESULT}.incomplete").read_text().splitlines()
    doc = json.loads((tmp_path / f"{RESULT}.incomplete.ranges.json").read_text())
    assert [f["path"] for f in doc["files"]] == listed  # the same files, in the same order
    (run,) = runstore.runs_of(runstore.image_dir(tmp_path, WORKLOAD_IMAGE))  # the kept run has them too
    assert load_list(run).ranges is not None
    assert ranges_path(run).read_bytes() == (tmp_path / f"{RESULT}.incomplete.ranges.json").read_bytes()

    # The range list of a list the operator deleted (with its csv) never blocks its next recording.
    (tmp_path / f"{RESULT}.ranges.json").write_text("stale\n")
    _, seen = _record(sandbox_node, pod, "on-time-ranges", RecordSettings(tmp_path, range_list=True), hook_budget=1.0)
    assert seen[-1].startswith(f"saved {tmp_path}/{RESULT} ({len(EXPECTED)} files, ")
    doc = json.loads((tmp_path / f"{RESULT}.ranges.json").read_text())
    assert [f["path"] for f in doc["files"]] == EXPECTED
