"""``nydus-top record`` launched by containerd as a pre-installed NRI plugin."""

from __future__ import annotations

import os
import select
import sys
from pathlib import Path

from sandbox.node import SandboxNode

from . import workload
from .harness import load_workload, wait_file, wait_in_file

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]

# The optimizer plugin's example configuration, as an operator would carry it over.
OPTIMIZER_CONFIG = """\
persist_dir = "{persist}"
readable = false
server_path = "/usr/local/bin/optimizer-server"
timeout = 0
overwrite = false
events = [ "StartContainer", "StopContainer" ]
"""


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_runs_as_a_plugin_containerd_launches(tmp_path: Path) -> None:
    persist, log = tmp_path / "results", tmp_path / "record.log"
    config = tmp_path / "optimizer.toml"
    config.write_text(OPTIMIZER_CONFIG.format(persist=persist))
    node = SandboxNode(tmp_path / "node")
    plugin = node.dir / "nri" / "plugins" / "10-nydus-top"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(f"#!/bin/sh\nexec {sys.executable} -m nydus_top record --config {config} --log {log}\n")
    plugin.chmod(0o755)
    node.up()
    try:
        ref = load_workload(node, tmp_path / "build")
        # containerd configures the plugins it launches but does not synchronize them.
        wait_in_file(log, "NRI: registered as 10-nydus-top at fd 3", timeout=20)
        (pid,) = _processes_with(str(config))
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"NRI_PLUGIN_SOCKET=3" in environ and not any(e.startswith(b"PATH=") for e in environ)
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"  # no terminal

        cri = node.cri
        pod = cri.run_pod("launched", namespace="record")
        cid = cri.create_container(pod, "exits", ref, command=workload.command("exit"))
        cri.start_container(cid)
        assert wait_file(persist / RESULT).decode().splitlines() == EXPECTED
        wait_in_file(log, "server_path is ignored")

        # A recording in progress when containerd goes away is saved, and the plugin exits.
        (persist / RESULT).unlink()
        (persist / f"{RESULT}.csv").unlink()
        stays = cri.create_container(pod, "stays", ref, command=workload.command("stay"))
        cri.start_container(stays)
        node.wait_for_log(stays, workload.DONE_LINE)
        node.down()
        wait_in_file(log, f"saved {persist / RESULT} ({len(EXPECTED)} files", f"stays ({stays[:12]})")
        assert _wait_gone(pid)
    finally:
        node.down()
    assert (persist / RESULT).read_text().splitlines() == EXPECTED


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    """Whether process *pid* exits within *timeout* (awaited through a pidfd)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)
