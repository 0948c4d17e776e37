"""``nydus-top record --range-list`` on a real containerd: a range list beside each saved list."""

from __future__ import annotations

import json

from testkit.harness import start_recorder, wait_exited, wait_file

from .test_recorder import EXPECTED, RESULT, _files, _run


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
