"""``nydus-top-tracer`` as the ``server_path`` of Debian's optimizer-nri-plugin, on a real containerd.

That plugin starts its server and answers containerd at once, without waiting for a mark: the
server's exec and mark race runc's start of the entry point. The workload reads its first
file from its first instruction, so only a server that marks within milliseconds of its exec sees
the entry point's exec (a Python server never did: 0 of 20 starts, see bench/README.md).
"""

from __future__ import annotations

from testkit import workload
from testkit.harness import start_optimizer, tracer_server, wait_exited

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]
# A race by design: the native server wins most starts (bench/startup_capture.py), not all.
ATTEMPTS = 5


def test_the_installed_server_is_native() -> None:
    assert tracer_server().read_bytes()[:4] == b"\x7fELF"  # no interpreter between exec and mark


def test_the_plugin_with_our_server_sees_a_start_from_the_entry_points_exec(sandbox_node, workload_image, pod,
                                                                           persist) -> None:
    cri = sandbox_node.cri
    opt = start_optimizer(sandbox_node.optimizer_plugin, sandbox_node.nri_socket, persist)
    lists = []
    try:
        for i in range(ATTEMPTS):
            mark = len(opt.log.lines)
            cid = cri.create_container(pod, f"opt-{i}", workload_image, command=workload.command("exit"))
            cri.start_container(cid)
            assert wait_exited(cri, cid) == 0
            # The server ends with the container; the plugin then closes its result files.
            opt.log.wait_for("Get EOF from fanotify server", 10, start=mark)
            lists.append((persist / RESULT).read_text().splitlines())
            (persist / RESULT).unlink()
            (persist / f"{RESULT}.csv").unlink()
            cri.remove_container(cid)
            if lists[-1] == EXPECTED:
                break
    finally:
        opt.stop()
    assert lists[-1] == EXPECTED, [f"{len(x)} files, first {x[:1]}" for x in lists]
    assert "panic" not in opt.log.text()
