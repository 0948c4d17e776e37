"""``nydus-top record`` as a cluster service: ``[metrics] address`` serves Prometheus text at
/metrics whose counters move with real container starts on the sandbox node, /healthz (the loop
answers) and /readyz (registered and synchronized over NRI), and ``--log-format json``."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from nydus_top.lists.files import result_paths
from sandbox import images
from sandbox.node import SandboxNode
from testkit.harness import LineLog, PluginProcess, start_recorder

SERVING = "serving /metrics, /healthz and /readyz on "


def _port(log: LineLog) -> int:
    line = log.lines[log.wait_for(SERVING, 30)]
    found = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    assert found is not None, line
    return int(found[1])


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def _poll(port: int, path: str, status: int, timeout: float = 60.0) -> bool:
    """Ask *path* every 0.1 s, as a probe would, until it answers *status*; False after *timeout*."""
    deadline = time.monotonic() + timeout
    while get(port, path)[0] != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "service.toml"
    config.write_text(f'keep_runs = 0\n{extra}\n[metrics]\naddress = "127.0.0.1:0"\n')
    return config


def test_metrics_and_health_follow_real_starts(sandbox_node: SandboxNode, tmp_path: Path) -> None:
    persist = tmp_path / "results"
    rec = start_recorder(sandbox_node.nri_socket, persist, args=[
        "--config", str(_config(tmp_path)), "--namespace", "metrics", "--log-format", "json"])
    try:
        port = _port(rec.log)
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/readyz") == (200, "ok\n")  # start_recorder returned once synchronized
        before = samples(port)
        first = sandbox_node.cri.run("metrics-1", images.DEMO_IMAGE, namespace="metrics")
        sandbox_node.wait_for_log(first.container_id, images.DEMO_READY_LINE)
        sandbox_node.cri.remove_pod(first.pod_id)
        saved = rec.log.wait_for(f"saved {result_paths(persist, images.DEMO_IMAGE).list} ", 30)
        second = sandbox_node.cri.run("metrics-2", images.DEMO_IMAGE, namespace="metrics")
        sandbox_node.wait_for_log(second.container_id, images.DEMO_READY_LINE)
        sandbox_node.cri.remove_pod(second.pod_id)
        rec.log.wait_for("not recording", 30)
        after = samples(port)
    finally:
        assert rec.stop() == 0

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    p = "nydus_top_"
    assert moved(p + "container_starts_seen_total") == 2
    assert moved(p + "container_starts_recorded_total") == 1
    assert moved(p + "container_starts_skipped_total", reason="recorded_already") == 1
    assert moved(p + "saves_total") == 1 and moved(p + "save_failures_total") == 0
    assert moved(p + "recording_files_count") == 1
    assert moved(p + "recording_files_sum") == len(images.DEMO_STARTUP_FILES)
    assert moved(p + "recordings_incomplete_total", reason="mark_late") == 0
    assert after[(p + "nri_connected", ())] == 1 and after[(p + "nri_connections_total", ())] == 1
    assert after[(p + "recording_memory_limit_bytes", ())] == 256 << 20
    assert after[(p + "push_queue_length", ())] == 0
    # --log-format json: every line one object; the save names its container and image.
    entries = [json.loads(line) for line in rec.log.lines if line != "\0EOF"]
    saved_entry = entries[saved]
    assert saved_entry["container"] == first.container_id and saved_entry["image"] == images.DEMO_IMAGE
    assert saved_entry["level"] == "info" and saved_entry["event"].startswith("saved ")


def test_not_ready_without_the_runtime_yet_alive(tmp_path: Path) -> None:
    """Nothing listens on the NRI socket (containerd down or restarting): /readyz 503, /healthz 200."""
    cmd = [sys.executable, "-I", "-m", "nydus_top", "record", "--nri-socket", str(tmp_path / "absent.sock"),
           "--persist-dir", str(tmp_path / "results"), "--config", str(_config(tmp_path))]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    rec = PluginProcess(proc, LineLog(proc.stderr))
    try:
        port = _port(rec.log)
        rec.log.wait_for("NRI: cannot use", 30)  # it tried, and goes on trying
        status, body = get(port, "/readyz")
        assert status == 503 and "not registered and synchronized" in body
        assert get(port, "/healthz") == (200, "ok\n")
        assert samples(port)[("nydus_top_nri_connected", ())] == 0
        assert get(port, "/nope")[0] == 404
    finally:
        assert rec.stop() == 0


def test_a_busy_metrics_address_ends_record_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = tmp_path / "busy.toml"
        config.write_text(f'[metrics]\naddress = "127.0.0.1:{port}"\n')
        done = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "record", "--nri-socket",
                               str(tmp_path / "absent.sock"), "--persist-dir", str(tmp_path / "results"),
                               "--config", str(config)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "cannot serve metrics" in line]
    assert lines == [f"nydus-top record: cannot serve metrics on 127.0.0.1:{port}: Address already in use"]


def test_readiness_follows_the_runtime_going_away_and_coming_back(sandbox_node: SandboxNode, tmp_path: Path) -> None:
    """containerd restarting, as the recorder sees it (its NRI socket and connection gone, then
    back): /readyz 503 meanwhile and 200 again once synchronized; /healthz 200 throughout."""
    from tests.nri.test_sandbox_nri import NriProxy

    proxy = NriProxy(tmp_path / "nri.sock", sandbox_node.nri_socket)
    proxy.listen()
    rec = start_recorder(proxy.path, tmp_path / "results", args=["--config", str(_config(tmp_path))])
    try:
        port = _port(rec.log)
        assert get(port, "/readyz")[0] == 200
        proxy.cut()
        rec.log.wait_for("NRI: ", 30)  # it noticed
        assert get(port, "/readyz")[0] == 503 and get(port, "/healthz")[0] == 200
        proxy.listen()
        # Synchronized again: nothing says so in the log (repeated lines are held back), /readyz
        # does; polled as kubelet polls it.
        assert _poll(port, "/readyz", 200), rec.log.text()
        assert samples(port)[("nydus_top_nri_connections_total", ())] == 2
    finally:
        proxy.close()
        assert rec.stop() == 0
