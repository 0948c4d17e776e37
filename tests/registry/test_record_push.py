"""``nydus-top record`` with ``[registry] push = true`` on the sandbox node: the list it saves for a
container of an image from the local registry ends up attached to that image."""

from __future__ import annotations

from pathlib import Path

from nydus_top.lists.files import result_paths
from nydus_top.registry import artifacts as registry
from sandbox import images
from sandbox.node import SandboxNode
from testkit.harness import start_recorder, wait_file

from .conftest import LocalRegistry


def test_the_recorder_pushes_what_it_saves(sandbox_node: SandboxNode, local_registry: LocalRegistry,
                                           tmp_path: Path) -> None:
    # The demo image, in the registry and on the node under the registry's name (same digest).
    ref = f"{local_registry.host}/team/demo:1"
    archive = tmp_path / "demo.tar"
    # A copy of the demo with a digest of its own: a second name for the node's demo image would
    # change the name containerd reports for every demo container of later tests.
    images.demo_image(sandbox_node.binaries.busybox, archive, ref, extra={"/etc/copy": ref.encode()})
    digest = local_registry.push_archive(archive, ref)
    images.import_image(sandbox_node, archive)
    config = tmp_path / "push.toml"
    config.write_text(f'[registry]\npush = true\nplain_http = ["{local_registry.host}"]\n')
    persist = tmp_path / "results"
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--config", str(config), "--namespace", "push"])
    try:
        demo = sandbox_node.cri.run("push-demo", ref, namespace="push")
        sandbox_node.wait_for_log(demo.container_id, images.DEMO_READY_LINE)
        sandbox_node.cri.remove_pod(demo.pod_id)
        listing = result_paths(persist, ref).list
        rec.log.wait_for(f"pushed {listing} to {ref} as sha256:", 30)
    finally:
        assert rec.stop() == 0
    saved = wait_file(listing)
    assert saved.decode().splitlines() == list(images.DEMO_STARTUP_FILES)
    client = registry.Client(local_registry.host, plain_http=True)
    (attached,) = registry.pull_lists(client, registry.parse_reference(ref))
    assert attached.files[""] == saved
    assert client.resolve(registry.parse_reference(ref)).digest == digest
    assert rec.log.count("cannot push") == 0
