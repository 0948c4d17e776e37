"""``nydus-top record --range-list`` on a real containerd: a range list beside each saved list."""

from __future__ import annotations

import json
import os
import signal

from testkit import workload
from testkit.harness import start_recorder, wait_exited, wait_file

from .test_recorder import EXPECTED, RESULT, _files, _run
from .test_service import _port, samples


def test_record_range_list_sees_every_startup_file_through_containerds_overlay(
        sandbox_node, workload_image, pod, persist) -> None:
    rec = start_recorder(sandbox_node.nri_socket, persist,
                         args=["--range-list", "--image", "*/startup-workload:*", "--namespace", "record"])
    try:
        cid = _run(sandbox_node.cri, pod, "ranges", workload_image)
        assert wait_exited(sandbox_node.cri, cid) == 0
        doc = json.loads(wait_file(persist / f"{RESULT}.ranges.json"))
        # every file was seen by the range tracer: the entry point is an ELF file (mapped), the
        # others were read whole, so all of them are whole files and none is without data
        rec.log.wait_for(f"ranges of {len(EXPECTED)}/{len(EXPECTED)} files", 10)
    finally:
        assert rec.stop() == 0
    assert doc == {"version": "v1", "files": [{"path": p, "ranges": None} for p in EXPECTED]}
    assert sorted(_files(persist)) == [RESULT, f"{RESULT}.csv", f"{RESULT}.nydus-top.json", f"{RESULT}.ranges.json"]
    assert "ranges unavailable" not in rec.log.text() and "INCOMPLETE" not in rec.log.text()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _range_tracer(root: int) -> int:
    """The process below *root* holding pre-access marks (mask FAN_PRE_ACCESS | FAN_EVENT_ON_CHILD);
    not *root* itself, whose watchdog holds a copy of the group."""
    for pid in _descendants(root)[1:]:
        try:
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    if " mask:8100000 " in f.read():
                        return pid
        except OSError:
            continue
    raise AssertionError(f"no range tracer below pid {root}")


def test_a_stopped_range_tracer_holds_no_other_container_of_the_image(sandbox_node, workload_image, pod,
                                                                       persist) -> None:
    cri = sandbox_node.cri
    config = persist.parent / "metrics.toml"
    config.write_text('[metrics]\naddress = "127.0.0.1:0"\n')
    rec = start_recorder(sandbox_node.nri_socket, persist, args=[
        "--range-list", "--image", "*/startup-workload:*", "--namespace", "record", "--config", str(config)])
    other = cri.run_pod("neighbour", namespace="not-recorded")
    tracer = None
    try:
        traced = _run(cri, pod, "traced", workload_image, mode="stay")
        rec.log.wait_for(f"recording record/record-test/traced ({traced[:12]}) into", 30)  # both marks placed
        tracer = _range_tracer(rec.proc.pid)
        os.kill(tracer, signal.SIGSTOP)
        # a container of the same image in another pod reads a file the traced one did not (its
        # reads would be free otherwise: a file read whole goes quiet for every reader)
        neighbour = cri.create_container(other, "neighbour", workload_image,
                                         command=workload.command("exit", files=workload.UNREAD_FILES))
        cri.start_container(neighbour)
        assert wait_exited(cri, neighbour, timeout=120) == 0  # it completed
        rec.log.wait_for("ranges stopped: a read of the image waited ", 30)
        cri.stop_container(traced)
        rec.log.wait_for("range tracer: ranges stopped: a read of the image waited ", 30)  # with the range list
        kills = samples(_port(rec.log))[("nydus_top_range_watchdog_kills_total", ())]
    finally:
        if tracer is not None:
            try:
                os.kill(tracer, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cri.remove_pod(other)
        assert rec.stop() == 0
    assert rec.log.count("range tracer of pid") == 1  # one line when it happened
    assert kills == 1  # and one count in the metrics
