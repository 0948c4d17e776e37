"""``nydus-top record`` on a real containerd, side by side with Debian's optimizer-nri-plugin."""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

import pytest

from nydus_top.lists import meta as listmeta
from nydus_top.runs import store as runstore
from testkit import workload
from testkit.harness import start_optimizer, start_recorder, wait_exited, wait_file

pytestmark = pytest.mark.every_containerd

RESULT = "startup-workload:1"  # nydus-top.local/startup-workload:1 -> <persist_dir>/startup-workload:1
META = f"{RESULT}.nydus-top.json"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


def _run(cri, pod: str, name: str, image: str, mode: str = "exit", interval_us: int = workload.INTERVAL_US) -> str:
    cid = cri.create_container(pod, name, image, command=workload.command(mode, interval_us=interval_us))
    cri.start_container(cid)
    return cid


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def _files(persist: Path) -> dict[str, bytes]:
    """The files under *persist* but the run store's (the optimizer's view)."""
    return {str(p.relative_to(persist)): p.read_bytes() for p in persist.rglob("*")
            if p.is_file() and not p.relative_to(persist).parts[0] == ".nydus-top"}


def _runs(persist: Path, image: str) -> list[Path]:
    return runstore.runs_of(runstore.image_dir(persist, image))


def test_records_the_whole_startup_into_optimizer_files(sandbox_node, workload_image, pod, persist) -> None:
    rec = start_recorder(sandbox_node.nri_socket, persist,
                         args=["--image", "*/startup-workload:*", "--namespace", "record"])
    try:
        cid = _run(sandbox_node.cri, pod, "one", workload_image)
        assert wait_exited(sandbox_node.cri, cid) == 0
        listing = wait_file(persist / RESULT)
        rows = _rows(wait_file(persist / f"{RESULT}.csv"))
        rec.log.wait_for(f"saved {persist / RESULT} ({len(EXPECTED)} files", 10)
    finally:
        assert rec.stop() == 0
    assert listing.decode().splitlines() == EXPECTED
    assert rows[0] == ["path", "size", "elapsed"]
    assert [r[0] for r in rows[1:]] == EXPECTED
    sizes = workload.file_sizes()
    assert [int(r[1]) for r in rows[2:]] == [sizes[p] for p in workload.STARTUP_FILES]
    elapsed = [int(r[2]) for r in rows[1:]]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    outside_runs = sorted(f for f in _files(persist) if not f.startswith(".nydus-top/"))
    assert outside_runs == [RESULT, f"{RESULT}.csv", META]  # nothing else left behind
    (run,) = _runs(persist, workload_image)  # and the start kept as a run, the same list
    assert run.read_bytes() == listing and f"kept run {run} ({len(EXPECTED)} files, complete)" in rec.log.text()
    assert "INCOMPLETE" not in rec.log.text()
    meta = listmeta.read(persist / RESULT)
    # The registry host the file name drops is in the metadata, as the runtime reported the image.
    assert workload_image.startswith("nydus-top.local/") and meta.image == workload_image
    assert (meta.container, meta.container_id, meta.pod) == ("one", cid, "record/record-test")
    assert meta.complete and meta.incomplete == "" and meta.files == len(EXPECTED)
    assert meta.node == socket.gethostname() and meta.created.endswith("Z") and meta.digest == ""


def _subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(x in it for x in small)


@pytest.mark.parametrize("flags", [[], ["--timeout", "2", "--readable"]], ids=["plain", "timeout-readable"])
def test_files_are_byte_compatible_with_the_optimizer(sandbox_node, workload_image, pod, tmp_path, flags) -> None:
    """Same workload start seen by both plugins at once: same file names, lines and csv fields."""
    ours, theirs = tmp_path / "nydus-top", tmp_path / "optimizer"
    rec = start_recorder(sandbox_node.nri_socket, ours, args=flags)
    opt = start_optimizer(sandbox_node.optimizer_plugin, sandbox_node.nri_socket, theirs, flags=flags)
    try:
        # 20 ms between files: the optimizer's per-container server has time to catch most of them.
        cid = _run(sandbox_node.cri, pod, "compat", workload_image, mode="stay", interval_us=20000)
        name = RESULT + (".timeout2s" if flags else "")
        sandbox_node.wait_for_log(cid, workload.DONE_LINE)
        if not flags:  # with a timeout both stop on their own while the container keeps running
            sandbox_node.cri.stop_container(cid)
        rec.log.wait_for(f"saved {ours / name}", 10)
        opt.log.wait_for("Get EOF from fanotify server", 10)
    finally:
        rec.stop()
        opt.stop()
    assert sorted(_files(ours)) == [name, f"{name}.csv", f"{name}.nydus-top.json"]  # the pair, and our identity
    assert sorted(_files(theirs)) == [name, f"{name}.csv"]
    our_list = (ours / name).read_bytes().decode().splitlines()
    their_list = (theirs / name).read_bytes().decode().splitlines()
    assert our_list == EXPECTED
    # The optimizer answers containerd without waiting for its server's mark: it may miss the
    # start, and what it has is ours, in the same order, byte for byte.
    assert their_list and _subsequence(their_list, our_list)
    assert "/data/comma,name.txt" in their_list and "/data/ünïcødé.txt" in their_list
    our_csv = (ours / f"{name}.csv").read_bytes().split(b"\n")
    their_csv = (theirs / f"{name}.csv").read_bytes().split(b"\n")
    assert our_csv[0] == their_csv[0] == b"path,size,elapsed"
    our_rows = {row[0]: (raw, row) for raw, row in zip(our_csv[1:-1], _rows(b"\n".join(our_csv[1:])), strict=True)}
    assert their_csv[-1] == our_csv[-1] == b""
    for raw, row in zip(their_csv[1:-1], _rows(b"\n".join(their_csv[1:])), strict=True):
        our_raw, our_row = our_rows[row[0]]
        # path and size byte-identical (csv quoting included); elapsed differs, in the same unit style
        assert raw.rsplit(b",", 1)[0] == our_raw.rsplit(b",", 1)[0]
        assert row[2].replace(".", "").split(" ")[0].isdigit() and our_row[2].replace(".", "").split(" ")[0].isdigit()
        assert row[2].count(" ") == our_row[2].count(" ") == (1 if flags else 0)


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "once"])
def test_two_containers_of_one_image_do_not_collide(sandbox_node, workload_image, pod, persist, overwrite) -> None:
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--overwrite"] if overwrite else [])
    first_log = rec.log
    cri = sandbox_node.cri
    try:
        first = _run(cri, pod, "first", workload_image, mode="stay")
        second = _run(cri, pod, "second", workload_image, mode="stay")
        for cid in (first, second):
            sandbox_node.wait_for_log(cid, workload.DONE_LINE)
        # Without overwrite the second start is recorded too, as a run only: the pair is the first's.
        rec.log.wait_for(f"recording record/record-test/second ({second[:12]})", 5)
        cri.stop_container(first)
        rec.log.wait_for(f"saved {persist / RESULT} ({len(EXPECTED)} files", 10)
        # Stopping the first container did not end or disturb the second one's recording.
        assert (persist / RESULT).read_text().splitlines() == EXPECTED
        cri.stop_container(second)
        if overwrite:
            line = rec.log.wait_for(f"saved {persist / RESULT}", 10, start=rec.log.wait_for("saved", 1) + 1)
            assert f"({second[:12]})" in rec.log.lines[line]
        else:
            rec.log.wait_for(f"{persist / RESULT} left as it is (overwrite = false); this start is kept as a "
                             "run only", 10)
            # Once the image has keep_runs runs, a later start of it is skipped at once.
            rec.stop()
            config = persist.parent / "keep-2.toml"
            config.write_text("keep_runs = 2\n")
            rec = start_recorder(sandbox_node.nri_socket, persist, args=["--config", str(config)])
            third = _run(cri, pod, "third", workload_image)
            rec.log.wait_for(f"not recording record/record-test/third ({third[:12]}): {persist / RESULT} exists "
                             "(overwrite = false); 2 runs of it kept (keep_runs = 2)", 5)
            assert wait_exited(cri, third) == 0
    finally:
        assert rec.stop() == 0
    assert (persist / RESULT).read_text().splitlines() == EXPECTED
    assert first_log.count("saved ") == (2 if overwrite else 1)
    assert sorted(f for f in _files(persist) if not f.startswith(".nydus-top/")) == [
        RESULT, f"{RESULT}.csv", META]
    assert listmeta.read(persist / RESULT).container == ("second" if overwrite else "first")
    # Both starts are runs either way; without overwrite the second one's is its only trace.
    assert [r.name.split("Z-")[1] for r in _runs(persist, workload_image)] == ["first", "second"]


def test_filters_leave_other_images_and_namespaces_alone(sandbox_node, workload_image, pod, tmp_path) -> None:
    everything = start_recorder(sandbox_node.nri_socket, tmp_path / "all")
    by_image = start_recorder(sandbox_node.nri_socket, tmp_path / "image", args=["--image", "docker.io/library/nginx"])
    by_namespace = start_recorder(sandbox_node.nri_socket, tmp_path / "ns", args=["--namespace", "kube-system"])
    try:
        cid = _run(sandbox_node.cri, pod, "filtered", workload_image)
        # containerd started the container only after every plugin answered its StartContainer:
        # each recorder has decided by now.
        wait_file(tmp_path / "all" / RESULT)
        everything.log.wait_for(f"saved {tmp_path / 'all' / RESULT}", 10)
        assert wait_exited(sandbox_node.cri, cid) == 0
    finally:
        for rec in (everything, by_image, by_namespace):
            assert rec.stop() == 0
    for rec in (by_image, by_namespace):
        assert rec.log.count("recording ") == 1  # only the "recording container starts via ..." line
        assert rec.log.count("saved") == 0
    for unused in (tmp_path / "image", tmp_path / "ns"):  # nothing but the recorder's lock (.nydus-top/record.lock)
        assert [p.relative_to(unused).as_posix() for p in sorted(unused.rglob("*"))] == [".nydus-top",
                                                                                        ".nydus-top/record.lock"]


def test_a_failed_save_is_reported_and_the_recorder_goes_on(sandbox_node, workload_image, pod, tmp_path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    rec = start_recorder(sandbox_node.nri_socket, blocker / "results", args=["--overwrite"])
    try:
        first = _run(sandbox_node.cri, pod, "unsaved", workload_image)
        line = rec.log.wait_for(f"unsaved ({first[:12]}) (", 10)
        assert f"NOT SAVED: cannot save {blocker}/results/startup-workload:1: Not a directory" in rec.log.lines[line]
        second = _run(sandbox_node.cri, pod, "again", workload_image)
        line = rec.log.wait_for(f"again ({second[:12]}) (", 10)
        assert "NOT SAVED" in rec.log.lines[line]
        assert wait_exited(sandbox_node.cri, first) == wait_exited(sandbox_node.cri, second) == 0
        assert rec.proc.poll() is None
    finally:
        assert rec.stop() == 0


def test_recordings_in_progress_are_saved_when_the_recorder_is_stopped(sandbox_node, workload_image, pod,
                                                                       persist) -> None:
    rec = start_recorder(sandbox_node.nri_socket, persist)
    cid = _run(sandbox_node.cri, pod, "running", workload_image, mode="stay")
    sandbox_node.wait_for_log(cid, workload.DONE_LINE)
    assert rec.stop() == 0  # SIGTERM
    rec.log.wait_for(f"saved {persist / RESULT} ({len(EXPECTED)} files, shutdown) for record/record-test/running", 1)
    assert (persist / RESULT).read_text().splitlines() == EXPECTED
    assert sandbox_node.cri.container_status(cid).state == "RUNNING"  # the container never noticed
