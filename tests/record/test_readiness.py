"""The readiness cut on a real containerd: `nydus-top record --ready-line/--ready-file` ends the
start-up list where the container says it is ready, and the list's metadata says where and why."""

from __future__ import annotations

from pathlib import Path

from nydus_top.lists import meta as listmeta
from sandbox import images
from sandbox.node import SandboxNode
from testkit.harness import start_recorder

STARTUP = ["/bin/busybox", "/app/start.sh", "/etc/app/a.conf", "/usr/share/app/b.bin"]
LATE = ["/usr/share/app/late1.bin", "/usr/share/app/late2.bin"]
READY = "app: READY"


def _script(gated: bool) -> bytes:
    """Read the start-up files, print READY, then read the late ones: at once, or (*gated*) when
    told to stop, so that they come after the recorder has seen the line whatever the load."""
    late = f"cat {' '.join(LATE)} >/dev/null"
    then = f"trap '{late}; exit 0' TERM" if gated else f"{late}\ntrap 'exit 0' TERM"
    return (f"#!/bin/sh\ncat /etc/app/a.conf /usr/share/app/b.bin >/dev/null\necho '{READY}'\n{then}\n"
            "while :; do sleep 3600 & wait $!; done\n").encode()


def _load(sandbox_node: SandboxNode, gated: bool) -> str:
    files: dict[str, images.Content] = {
        **images.busybox_files(sandbox_node.binaries.busybox),
        "/app/start.sh": images.File(_script(gated), 0o755),
        "/etc/app/a.conf": b"a = 1\n", "/usr/share/app/b.bin": b"b" * 5000,
        **{path: b"late\n" * 100 for path in LATE},
    }
    return sandbox_node.load_image(f"nydus-top.local/ready-{'gated' if gated else 'at-once'}:1", files,
                                   ["/bin/sh", "/app/start.sh"])


def _record(sandbox_node: SandboxNode, pod: str, persist: Path, image: str,
            flags: list[str]) -> tuple[list[str], listmeta.ListMeta]:
    result = persist / image.removeprefix("nydus-top.local/")
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--image", image, *flags])
    try:
        cid = sandbox_node.cri.create_container(pod, "ready", image)
        sandbox_node.cri.start_container(cid)
        rec.log.wait_for(f"saved {result} ", 60)  # before the container stops: the cut ended the recording
        sandbox_node.cri.stop_container(cid, timeout=10)  # a gated workload reads its late files now
    finally:
        assert rec.stop() == 0
    meta = listmeta.read(result)
    assert meta is not None
    return result.read_text().splitlines(), meta


def test_a_ready_line_ends_the_list(sandbox_node: SandboxNode, pod: str, persist: Path) -> None:
    listed, meta = _record(sandbox_node, pod, persist, _load(sandbox_node, gated=True), ["--ready-line", "READY$"])
    assert listed == STARTUP
    assert (meta.cut, meta.cut_detail, meta.cut_after) == ("ready_line", READY, STARTUP[-1])
    assert meta.cut_us > 0 and meta.complete


def test_a_ready_file_ends_the_list(sandbox_node: SandboxNode, pod: str, persist: Path) -> None:
    image = _load(sandbox_node, gated=False)
    listed, meta = _record(sandbox_node, pod, persist, image, ["--ready-file", r"/b\.bin$"])
    assert listed == STARTUP  # the late files are read at once, after it in the trace
    assert (meta.cut, meta.cut_detail, meta.cut_after) == ("ready_file", STARTUP[-1], STARTUP[-1])


def test_a_time_window_ends_the_list(sandbox_node: SandboxNode, pod: str, persist: Path) -> None:
    """The gated workload never stops by itself: the window alone ends the recording, with what
    was read by then (start-up's first files, in order, on any load)."""
    listed, meta = _record(sandbox_node, pod, persist, _load(sandbox_node, gated=True), ["--ready-after", "2"])
    assert listed and listed == STARTUP[:len(listed)]
    assert (meta.cut, meta.cut_detail, meta.cut_after) == ("ready_after", "2s", listed[-1])
