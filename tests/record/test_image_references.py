"""An image with several references: CRI names a container's image by one of them (on containerd
1.7 and 2.1 driven by a client that does not say which one it used, the first in its sort order),
not necessarily the one the pod asked for. ``record --image REF`` takes a start of the image by
any of its references."""

from __future__ import annotations

import pytest

from nydus_top.lists import meta as listmeta
from sandbox import images
from testkit import workload
from testkit.harness import start_recorder, wait_exited, wait_file

pytestmark = pytest.mark.every_containerd

# Sorts after the workload's own reference (nydus-top.local/startup-workload:1): CRI keeps naming
# the image by that one, also for the other tests' containers.
ALIAS = "nydus-top.local/zz-startup-alias:2"


def test_a_start_by_another_reference_of_the_image_is_recorded(sandbox_node, workload_image, pod, persist) -> None:
    images._ctr(sandbox_node, "images", "tag", "--force", workload_image, ALIAS)
    rec = start_recorder(sandbox_node.nri_socket, persist,
                         args=["--image", ALIAS, "--containerd-address", str(sandbox_node.containerd_socket),
                               "--debug"])
    try:
        cid = sandbox_node.cri.create_container(pod, "alias", ALIAS, command=workload.command("exit"))
        sandbox_node.cri.start_container(cid)
        assert wait_exited(sandbox_node.cri, cid) == 0
        listing = wait_file(persist / "zz-startup-alias:2")
        rec.log.wait_for(f"saved {persist / 'zz-startup-alias:2'} (", 10)
    finally:
        assert rec.stop() == 0
    assert listing.decode().splitlines() == [workload.ENTRYPOINT, *workload.STARTUP_FILES]
    meta = listmeta.read(persist / "zz-startup-alias:2")
    assert meta is not None and meta.image == ALIAS


def test_a_start_of_another_image_is_left_out_with_a_debug_line(sandbox_node, workload_image, pod, persist) -> None:
    other = "nydus-top.local/other:1"
    rec = start_recorder(sandbox_node.nri_socket, persist,
                         args=["--image", other, "--containerd-address", str(sandbox_node.containerd_socket),
                               "--debug"])
    try:
        cid = sandbox_node.cri.create_container(pod, "other", workload_image, command=workload.command("exit"))
        sandbox_node.cri.start_container(cid)
        # containerd starts the container only once the recorder answered its StartContainer.
        rec.log.wait_for(f"not recording record/record-test/other ({cid[:12]}): image {workload_image} (or another "
                         f"reference of it) matches no --image {other}", 10)
        assert wait_exited(sandbox_node.cri, cid) == 0
    finally:
        assert rec.stop() == 0
    assert rec.log.count("saved") == 0
    assert rec.log.count("cannot ask containerd") == 0
