"""``nydus-top record`` launched by containerd as a pre-installed NRI plugin."""

from __future__ import annotations

import csv
import os
import re
import select
import sys
from pathlib import Path

import pytest

from nydus_top.lists.files import readable_size
from sandbox.node import SandboxNode, processes_mentioning
from testkit import workload
from testkit.harness import load_workload, wait_exited, wait_file, wait_in_file

pytestmark = pytest.mark.every_containerd

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


def _install(plugin: Path, args: str) -> None:
    """A pre-installed plugin ``<idx>-<name>`` running ``nydus-top record`` with *args*."""
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(f"#!/bin/sh\nexec {sys.executable} -m nydus_top record {args}\n")
    plugin.chmod(0o755)


def test_runs_as_a_plugin_containerd_launches(tmp_path: Path, containerd_version: str) -> None:
    persist, log = tmp_path / "results", tmp_path / "record.log"
    config = tmp_path / "optimizer.toml"
    config.write_text(OPTIMIZER_CONFIG.format(persist=persist))
    node = SandboxNode(tmp_path / "node", containerd_version)
    _install(node.dir / "nri" / "plugins" / "10-nydus-top", f"--config {config} --log {log}")
    node.up()
    try:
        ref = load_workload(node, tmp_path / "build")
        # containerd configures the plugins it launches but does not synchronize them.
        wait_in_file(log, "NRI: registered as 10-nydus-top at fd 3", timeout=20)
        (pid,) = processes_mentioning(str(config))
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
        # (The operator removes the pair to record the image again; its identity file is replaced.)
        (persist / RESULT).unlink()
        (persist / f"{RESULT}.csv").unlink()
        assert (persist / f"{RESULT}.nydus-top.json").exists()
        stays = cri.create_container(pod, "stays", ref, command=workload.command("stay"))
        cri.start_container(stays)
        node.wait_for_log(stays, workload.DONE_LINE)
        node.down()
        wait_in_file(log, f"saved {persist / RESULT} ({len(EXPECTED)} files", f"stays ({stays[:12]})")
        assert _wait_gone(pid)
    finally:
        node.down()
    assert (persist / RESULT).read_text().splitlines() == EXPECTED


def test_takes_its_config_from_containerds_plugin_config_path(tmp_path: Path, containerd_version: str) -> None:
    """No --config: the optimizer's file in conf.d, handed over in NRI Configure, decides the results.

    Two launched recorders see the same start: ``10-nydus-top`` with a good ``10-nydus-top.conf``
    and ``20-badconf`` with a bad ``badconf.conf``, which keeps the settings of its command line.
    """
    persist, log, flag_dir = tmp_path / "results", tmp_path / "record.log", tmp_path / "flag"
    fallback, elsewhere, bad_log = tmp_path / "fallback", tmp_path / "elsewhere", tmp_path / "bad.log"
    node = SandboxNode(tmp_path / "node", containerd_version)
    plugins, conf_d = node.dir / "nri" / "plugins", node.dir / "nri" / "conf.d"
    conf_d.mkdir(parents=True)
    # --persist-dir only keeps a broken build off the host's /opt/nri: the file overrides it.
    _install(plugins / "10-nydus-top", f"--persist-dir {flag_dir} --log {log}")
    (conf_d / "10-nydus-top.conf").write_text(
        OPTIMIZER_CONFIG.format(persist=persist).replace("readable = false", "readable = true")
        .replace("timeout = 0", "timeout = 30").replace("overwrite = false", "overwrite = true"))
    _install(plugins / "20-badconf", f"--persist-dir {fallback} --log {bad_log}")
    (conf_d / "badconf.conf").write_text(f'persist_dir = "{elsewhere}"\ntimeout = "30"\n')
    name = f"{RESULT}.timeout30s"
    persist.mkdir()
    (persist / name).write_text("/stale\n")  # replaced: overwrite = true came through
    node.up()
    try:
        ref = load_workload(node, tmp_path / "build")
        wait_in_file(log, "NRI: registered as 10-nydus-top at fd 3", timeout=20)
        wait_in_file(bad_log, "NRI: registered as 20-badconf at fd 3", timeout=20)
        cri = node.cri
        pod = cri.run_pod("configured", namespace="record")
        cid = cri.create_container(pod, "exits", ref, command=workload.command("exit"))
        cri.start_container(cid)
        assert wait_exited(cri, cid) == 0
        saved = wait_in_file(log, f"saved {persist / name} ({len(EXPECTED)} files")
        wait_in_file(bad_log, f"saved {fallback / RESULT} ({len(EXPECTED)} files")
    finally:
        node.down()
    lines = log.read_text().splitlines()
    configured = [i for i, line in enumerate(lines) if "NRI Configure of containerd" in line]
    assert len(configured) == 1 and configured[0] < lines.index(saved)
    assert f"recording into {persist} (readable = true, timeout = 30, overwrite = true)" in lines[configured[0]]
    assert any("NRI Configure: server_path is ignored" in line for line in lines)
    assert (persist / name).read_text().splitlines() == EXPECTED
    rows = list(csv.reader((persist / f"{name}.csv").read_text().splitlines()))
    assert rows[0] == ["path", "size", "elapsed"] and [r[0] for r in rows[1:]] == EXPECTED
    sizes = workload.file_sizes()
    assert [r[1] for r in rows[2:]] == [readable_size(sizes[p]) for p in workload.STARTUP_FILES]
    assert all(re.fullmatch(r"[0-9]+ us|[0-9]+\.[0-9]{3} (ms|s)", r[2]) for r in rows[1:])
    assert sorted(p.name for p in persist.iterdir()) == [".nydus-top", name, f"{name}.csv", f"{name}.nydus-top.json"]
    assert not flag_dir.exists()

    # The bad text: one line naming the key; the start was recorded with the command line's settings.
    bad = [line for line in bad_log.read_text().splitlines() if "NRI Configure" in line]
    assert len(bad) == 1, bad
    assert bad[0].endswith("NRI Configure: key 'timeout' must be an integer >= 0, got '30'; "
                           "keeping the previous settings")
    assert (fallback / RESULT).read_text().splitlines() == EXPECTED
    assert (fallback / f"{RESULT}.csv").read_text().splitlines()[1].count(" ") == 0  # readable = false
    assert not elsewhere.exists()


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
