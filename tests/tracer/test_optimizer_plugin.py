"""``nydus-top-tracer`` as the ``server_path`` of Debian's Go ``optimizer-nri-plugin`` on the real
sandbox node (containerd 1.7.24): the plugin's own list and csv files come out right."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from pathlib import Path

from sandbox import images

VENV_BIN = Path(sys.executable).parent


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_reference_plugin_records_our_lines(sandbox_node, tmp_path: Path) -> None:
    ref = sandbox_node.load_image(
        "nydus-top.local/optimizer-compat:1",
        {**images.busybox_files(sandbox_node.binaries.busybox),
         "/data/first.txt": b"1", "/data/with space.bin": b"22", "/data/new\nline": b"3"},
        # The plugin answers containerd before its server is ready: keep reading until traced.
        ["/bin/sh", "-c", "while true; do cat /data/first.txt '/data/with space.bin' '/data/new\nline'"
                          " >/dev/null; sleep 0.05; done"])
    persist = tmp_path / "results"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(sandbox_node.nri_socket))
    log = (tmp_path / "plugin.log").open("wb")
    plugin = subprocess.Popen(
        [str(sandbox_node.optimizer_plugin), "--name", "nydus-top-compat", "--idx", "90",
         "--server-path", str(VENV_BIN / "nydus-top-tracer"), "--persist-dir", str(persist), "--overwrite"],
        env={"NRI_PLUGIN_SOCKET": str(sock.fileno())}, pass_fds=(sock.fileno(),), stdout=log, stderr=log)
    sock.close()
    started = None
    try:
        wait_for(lambda: b"Configure" in (tmp_path / "plugin.log").read_bytes()
                 or b"configuration" in (tmp_path / "plugin.log").read_bytes(), 30, "plugin not registered")
        started = sandbox_node.cri.run("optimizer-compat", ref)
        listing = persist / "optimizer-compat:1"  # <persist_dir>/<repository dir>/<name>:<tag>
        wait_for(lambda: listing.exists() and "/data/with space.bin" in listing.read_text(), 30,
                 "paths not recorded")
    finally:
        if started is not None:
            sandbox_node.cri.remove_pod(started.pod_id)  # StopContainer: the plugin SIGTERMs us
        plugin.terminate()
        plugin.wait(10)
        log.close()
    lines = listing.read_text().splitlines()
    assert lines[lines.index("/data/first.txt") + 1] == "/data/with space.bin"
    # no injected lines; the name with a newline is an overflow line, which the plugin writes empty
    assert all(line.startswith("/") or line == "" for line in lines) and "/data/new" not in lines
    assert "" in lines
    with open(f"{listing}.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "size", "elapsed"]
    assert {tuple(r[:2]) for r in rows[1:]} >= {("/data/first.txt", "1"), ("/data/with space.bin", "2")}
    assert b"panic" not in (tmp_path / "plugin.log").read_bytes()
