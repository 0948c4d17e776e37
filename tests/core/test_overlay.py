"""Upper-only detection on a real overlayfs, mounted in a private mount namespace.

A helper process mounts an overlay (two lower layers, one upper), changes it at "runtime"
through the mount, then chroots into it like a container; we read its /proc/<pid>/mountinfo.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nydus_top.tracing.overlay import Origin, OverlayError, OverlayRoot, parse_mountinfo
from tests.lists.helpers import in_private_namespace

CONTAINER = """
import os, subprocess, sys
base = sys.argv[1]
l1, l2, up, work, merged = (os.path.join(base, n) for n in ("lower1", "lower2", "upper", "work", "merged"))
subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir={l1}:{l2},upperdir={up},workdir={work}", merged], check=True)
open(merged + "/run/created.pid", "w").close()            # created at runtime
with open(merged + "/etc/app.conf", "a") as f:             # image file modified: copied up
    f.write("changed")
os.unlink(merged + "/usr/lib/removed.so")                  # image file deleted: whiteout
os.symlink("/etc", merged + "/esc")                        # a symlink pointing at the host's /etc
os.mkdir(merged + "/newdir")
open(merged + "/newdir/f", "w").close()
os.chroot(merged)
os.chdir("/")
"""


@pytest.fixture
def container(tmp_path: Path):
    base = tmp_path / "layers with space"  # exercises mountinfo's octal escapes
    layers = {name: base / name for name in ("lower1", "lower2", "upper", "work", "merged")}
    for path in layers.values():
        path.mkdir(parents=True)
    for rel, layer in (("etc/app.conf", "lower1"), ("usr/bin/app", "lower2"), ("usr/lib/removed.so", "lower2"),
                       ("usr/lib/libc.so", "lower1"), ("usr/lib/libc.so", "lower2")):
        (layers[layer] / rel).parent.mkdir(parents=True, exist_ok=True)
        (layers[layer] / rel).write_text(rel)
    (layers["lower1"] / "run").mkdir()
    # image-layer deletions, as containerd's overlay snapshotter stores them
    for rel in ("usr/lib/gone.so", "opt/app/old.txt", "opt/app/kept.txt", "lib/x.so"):
        (layers["lower2"] / rel).parent.mkdir(parents=True, exist_ok=True)
        (layers["lower2"] / rel).write_text(rel)
    os.mknod(layers["lower1"] / "usr/lib/gone.so", stat.S_IFCHR, os.makedev(0, 0))  # whiteout
    (layers["lower1"] / "opt/app").mkdir(parents=True)
    (layers["lower1"] / "opt/app/new.txt").write_text("new")
    (layers["lower1"] / "opt/app/kept.txt").write_text("kept")
    os.setxattr(layers["lower1"] / "opt/app", "trusted.overlay.opaque", b"y")  # hides lower2's opt/app
    (layers["lower1"] / "lib").write_text("a file hiding lower2's lib/ directory")
    with in_private_namespace(CONTAINER.replace("base = sys.argv[1]", f"base = {str(base)!r}")) as proc:
        yield proc.pid, layers


def test_finds_the_root_overlay_of_a_pid(container) -> None:
    pid, layers = container
    root = OverlayRoot.for_pid(pid)
    assert root.upperdir == str(layers["upper"])
    assert root.lowerdirs == (str(layers["lower1"]), str(layers["lower2"]))


def test_origin_of_traced_paths(container) -> None:
    pid, _ = container
    root = OverlayRoot.for_pid(pid)
    assert root.origin("/usr/bin/app") is Origin.IMAGE
    assert root.origin("/usr/lib/libc.so") is Origin.IMAGE
    assert root.origin("/etc/app.conf") is Origin.IMAGE  # copied up, but the image has it
    assert root.origin("/usr/lib/removed.so") is Origin.IMAGE
    assert root.origin("/run/created.pid") is Origin.UPPER
    assert root.origin("/newdir") is Origin.UPPER
    assert root.origin("/newdir/f") is Origin.UPPER
    assert root.origin("/esc") is Origin.UPPER  # the symlink itself
    # the symlink is never followed out of the layer to the host's /etc/passwd
    assert Path("/etc/passwd").exists()
    assert root.origin("/esc/passwd") is Origin.ELSEWHERE
    assert root.origin("/proc/self/status") is Origin.ELSEWHERE
    for bad in ("/../etc/passwd", "/usr/bin/../bin/app", "usr/bin/app", "", "/usr/bin/app\0x"):
        assert root.origin(bad) is Origin.ELSEWHERE


def test_image_layer_whiteouts_and_opaque_dirs_agree_with_the_kernel(container) -> None:
    pid, _ = container
    root = OverlayRoot.for_pid(pid)
    untouched = ["/usr/bin/app", "/usr/lib/libc.so", "/usr/lib/gone.so", "/opt/app/new.txt", "/opt/app/kept.txt",
                 "/opt/app/old.txt", "/opt/app", "/lib", "/lib/x.so", "/usr/lib/nothing"]
    visible = {p: os.path.lexists(f"/proc/{pid}/root{p}") for p in untouched}  # the real overlay's view
    assert visible["/usr/lib/gone.so"] is False and visible["/opt/app/old.txt"] is False  # the setup worked
    assert {p: o is Origin.IMAGE for p, o in zip(untouched, root.classify(untouched), strict=True)} == visible


def test_upper_only_keeps_order(container) -> None:
    pid, _ = container
    root = OverlayRoot.for_pid(pid)
    traced = ["/usr/bin/app", "/newdir/f", "/etc/app.conf", "/run/created.pid", "/esc/passwd", "/nowhere"]
    assert root.upper_only(traced) == ["/newdir/f", "/run/created.pid"]


def test_non_overlay_root_and_missing_pid_are_clear_errors() -> None:
    with pytest.raises(OverlayError, match=r"^the root filesystem is \w+, not overlay$"):
        OverlayRoot.for_pid(os.getpid())
    with pytest.raises(OverlayError, match=r"^cannot read mounts of pid 999999999: No such file or directory$"):
        OverlayRoot.for_pid(999999999)


def test_parse_mountinfo_fields_and_escapes() -> None:
    text = (
        "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "garbage line\n"
        "35 22 0:30 / /mnt/with\\040space rw master:3 shared:7 - tmpfs tmp\\134fs rw,size=64k\n"
        "40 35 0:31 / / rw - overlay overlay rw,lowerdir=/l\\054a:/l2,upperdir=/u,workdir=/w\n"
    )
    mounts = parse_mountinfo(text)
    assert [(m.mount_id, m.parent_id, m.mount_point, m.fstype, m.source) for m in mounts] == [
        (22, 1, "/", "ext4", "/dev/vda"), (35, 22, "/mnt/with space", "tmpfs", "tmp\\fs"),
        (40, 35, "/", "overlay", "overlay")]
    root = OverlayRoot.from_mountinfo(text)  # the last mount on / wins
    assert root.lowerdirs == ("/l,a", "/l2") and root.upperdir == "/u"
    with pytest.raises(OverlayError, match="no upper directory"):
        OverlayRoot.from_mountinfo("1 0 0:1 / / ro - overlay overlay ro,lowerdir=/a:/b\n")
