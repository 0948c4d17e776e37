"""nydus-top's NRI client against the real sandbox node: containerd 1.7.24 (NRI 0.6.1) and 2.1.9 (NRI 0.8.0)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from nydus_top.model.node import ContainerState, EventKind, PodState
from sandbox import images
from tests.nri.live import LiveSession

pytestmark = pytest.mark.every_containerd

NYDUS_TOP = [sys.executable, "-m", "nydus_top"]
CRI_TO_MODEL = {"CREATED": "created", "RUNNING": "running", "EXITED": "stopped"}


def ps(node, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*NYDUS_TOP, "ps", "--nri-socket", str(node.nri_socket), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pods(sandbox_node):
    """Pod ids a test started; removed afterwards."""
    started: list[str] = []
    yield started
    for pod_id in started:
        sandbox_node.cri.remove_pod(pod_id)


def start_pod(node, pods: list[str], name: str, *, containers: int = 1, namespace: str = "nri-test",
              start: bool = True) -> tuple[str, list[str]]:
    cri = node.cri
    pod_id = cri.run_pod(name, namespace=namespace)
    pods.append(pod_id)
    ids = []
    for i in range(containers):
        cid = cri.create_container(pod_id, f"{name}-c{i}", images.PAUSE_IMAGE)
        if start:
            cri.start_container(cid)
        ids.append(cid)
    return pod_id, ids


def cri_view(node) -> tuple[set, set]:
    cri = node.cri
    pods = {(p.id, p.name, p.namespace, p.uid, "ready" if p.ready else "notready") for p in cri.pods()}
    ctrs = {(c.id, c.pod_id, c.name, c.image, CRI_TO_MODEL[c.state]) for c in cri.containers()}
    return pods, ctrs


def model_view(pods, containers) -> tuple[set, set]:
    return ({(p["id"], p["name"], p["namespace"], p["uid"], p["state"]) for p in pods},
            {(c["id"], c["pod_id"], c["name"], c["image"], c["state"]) for c in containers})


def test_ps_shows_exactly_what_cri_lists(sandbox_node, pods) -> None:
    start_pod(sandbox_node, pods, "ps-two", containers=2)
    start_pod(sandbox_node, pods, "ps-empty", containers=0, namespace="other")
    stopped, _ = start_pod(sandbox_node, pods, "ps-stopped", containers=0)
    sandbox_node.cri.stop_pod(stopped)
    out = ps(sandbox_node, "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert model_view(listing["pods"], listing["containers"]) == cri_view(sandbox_node)
    assert len(listing["containers"]) == 2 and all(c["pid"] > 0 and c["args"] for c in listing["containers"])
    table = ps(sandbox_node)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POD", "CONTAINER", "STATE", "AGE", "PID", "IMAGE", "ID"]
    assert any(line.split()[:4] == ["nri-test", "ps-two", "ps-two-c1", "running"]
               and line.split()[4].endswith(("s", "m")) for line in lines), lines  # started moments ago
    assert any(line.split()[:5] == ["nri-test", "ps-stopped", "-", "pod", "notready"] for line in lines)


def test_exited_containers_leave_the_listing_on_resync(sandbox_node, pods) -> None:
    """containerd (1.7 and 2.1) synchronizes only created and running containers; CRI still lists exited ones."""
    _, (cid,) = start_pod(sandbox_node, pods, "ps-exited")
    sandbox_node.cri.stop_container(cid)
    listing = json.loads(ps(sandbox_node, "--json").stdout)
    cri_pods, cri_ctrs = cri_view(sandbox_node)
    assert model_view(listing["pods"], listing["containers"]) == (
        cri_pods, {c for c in cri_ctrs if c[4] != "stopped"})
    assert any(c[0] == cid and c[4] == "stopped" for c in cri_ctrs)


def read_json_lines(proc: subprocess.Popen, until, timeout: float = 20) -> list[dict]:
    lines: list[dict] = []
    done = threading.Event()

    def reader() -> None:
        for line in proc.stdout:
            lines.append(json.loads(line))
            if until(lines):
                done.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    assert done.wait(timeout), [ln["event"] for ln in lines]
    return lines


def test_watch_streams_pods_and_containers_appearing_and_disappearing(sandbox_node, pods) -> None:
    watch = subprocess.Popen([*NYDUS_TOP, "ps", "--watch", "--nri-socket", str(sandbox_node.nri_socket)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_json_lines(watch, lambda ls: ls[-1]["event"] == "sync")
        pod_id, (cid,) = start_pod(sandbox_node, pods, "watched")
        got = read_json_lines(watch, lambda ls: ls[-1]["event"] == "container-start")
        assert [ln["event"] for ln in got] == ["pod-run", "container-start"]
        assert got[0]["pod"]["id"] == pod_id and got[0]["pod"]["name"] == "watched"
        started = got[1]["container"]
        assert (started["id"], started["state"], started["image"]) == (cid, "running", images.PAUSE_IMAGE)
        assert started["pid"] > 0
        sandbox_node.cri.remove_pod(pod_id)
        pods.remove(pod_id)
        got = read_json_lines(watch, lambda ls: ls[-1]["event"] == "pod-remove")
        kinds = [ln["event"] for ln in got]
        assert kinds == ["container-stop", "pod-stop", "container-remove", "pod-remove"], kinds
        assert all((ln.get("container") or ln["pod"])["id"] in (pod_id, cid) for ln in got)
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            assert watch.wait(10) == 130  # interrupted, as by Ctrl-C
        finally:
            watch.kill()


def test_live_model_follows_cri_and_containerd_restarts(sandbox_node, pods) -> None:
    with LiveSession(str(sandbox_node.nri_socket)) as live:
        mark = live.mark()
        pod_id, (cid,) = start_pod(sandbox_node, pods, "live")
        live.wait_kind(EventKind.CONTAINER_START, container_id=cid, after=mark)
        assert live.model.pods[pod_id].state is PodState.READY
        assert live.model.containers[cid].state is ContainerState.RUNNING
        sandbox_node.cri.stop_container(cid)
        live.wait_kind(EventKind.CONTAINER_STOP, container_id=cid, after=mark)
        assert live.model.containers[cid].state is ContainerState.STOPPED

        # containerd killed: the session notices, retries quietly, and resyncs once it is back.
        mark = live.mark()
        os.kill(sandbox_node.pid(), signal.SIGKILL)
        live.wait_kind(EventKind.DISCONNECTED, after=mark)
        assert not live.model.connected
        sandbox_node.up()
        live.wait_kind(EventKind.SYNC, after=mark)
        assert live.model.connected
        pods_now, ctrs_now = cri_view(sandbox_node)
        snap_pods, snap_ctrs = live.model.snapshot()
        assert model_view([asdict(p) for p in snap_pods.values()], [asdict(c) for c in snap_ctrs.values()]) == (
            pods_now, {c for c in ctrs_now if c[4] != "stopped"})

        mark = live.mark()
        pod2, (cid2,) = start_pod(sandbox_node, pods, "after-restart")
        live.wait_kind(EventKind.CONTAINER_START, container_id=cid2, after=mark)
        assert pod2 in live.model.pods


def test_fifty_pods_present_at_connect_are_all_synchronized(sandbox_node, pods) -> None:
    expected = {start_pod(sandbox_node, pods, f"bulk-{i:02d}", containers=1 if i % 5 == 0 else 0)[0]
                for i in range(50)}
    listing = json.loads(ps(sandbox_node, "--json").stdout)
    assert expected <= {p["id"] for p in listing["pods"]}
    assert model_view(listing["pods"], listing["containers"]) == cri_view(sandbox_node)
    assert len([c for c in listing["containers"] if c["pod_id"] in expected]) == 10


def test_slow_start_hook_holds_the_start_but_the_plugin_stays(sandbox_node, pods) -> None:
    seen = []

    async def slow_hook(pod, container, deadline):
        # The container is created but held: its pid is still runc's init, not the entrypoint.
        argv = Path(f"/proc/{container.pid}/cmdline").read_bytes().split(b"\0")
        seen.append((container.name, [os.path.basename(argv[0]), argv[1]], deadline - time.monotonic()))
        await asyncio.sleep(30)  # far beyond the budget: cut at it

    with LiveSession(str(sandbox_node.nri_socket), hook_budget=1.0) as live:
        live.session.add_start_hook(slow_hook)
        for name in ("slow-1", "slow-2"):
            _, (cid,) = start_pod(sandbox_node, pods, name, start=False)
            mark = live.mark()
            t0 = time.monotonic()
            sandbox_node.cri.start_container(cid)
            took = time.monotonic() - t0
            live.wait_kind(EventKind.CONTAINER_START, container_id=cid, after=mark)
            assert took >= 1.0, took  # containerd waited for the hook ...
            assert sandbox_node.cri.container_status(cid).state == "RUNNING"  # ... and started it
        assert [s[0] for s in seen] == ["slow-1-c0", "slow-2-c0"]  # still registered for the second
        assert all(s[1] == [b"runc", b"init"] for s in seen), seen
        assert all(0.5 < s[2] <= 1.0 for s in seen)  # the budget, well inside the 2 s timeout


class NriProxy:
    """A UNIX socket at ``path`` relaying every connection to ``target`` (containerd's NRI socket);
    ``cut()`` drops the connections and the socket, as containerd going away does for the plugin."""

    def __init__(self, path: Path, target: Path) -> None:
        self.path, self.target = path, target
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.transports: list[asyncio.BaseTransport] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _relay(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        self.transports += [writer.transport, up_writer.transport]

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self) -> None:
        async def start():
            self.server = await asyncio.start_unix_server(self._relay, str(self.path))
        self._call(start())

    def cut(self) -> None:
        async def cut():
            self.server.close()
            self.path.unlink()
            for transport in self.transports:
                transport.abort()
            self.transports.clear()
        self._call(cut())

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_record_names_a_container_started_while_it_was_disconnected(sandbox_node, pods, tmp_path) -> None:
    proxy = NriProxy(tmp_path / "nri.sock", sandbox_node.nri_socket)
    proxy.listen()
    record = subprocess.Popen([*NYDUS_TOP, "record", "--nri-socket", str(proxy.path), "--persist-dir",
                               str(tmp_path / "out")], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines: list[str] = []
    seen = threading.Condition()

    def read() -> None:
        for line in record.stderr:
            with seen:
                lines.append(line)
                seen.notify_all()

    def wait_line(text: str) -> None:
        with seen:
            assert seen.wait_for(lambda: any(text in ln for ln in lines), 30), lines

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_line("recording container starts via")
        known = {c.id for c in sandbox_node.cri.containers()}
        proxy.cut()  # nydus-top and containerd lose each other; containerd keeps running
        _, (cid,) = start_pod(sandbox_node, pods, "missed")
        proxy.listen()  # back: nydus-top reconnects, containerd synchronizes it
        missed = f"nri-test/missed/missed-c0 ({cid[:12]}) started while disconnected: not recorded"
        wait_line(missed)
        record.send_signal(signal.SIGTERM)
        assert record.wait(10) == 0
    finally:
        record.kill()
        proxy.close()
    assert sum(missed in ln for ln in lines) == 1
    assert not any(old[:12] in ln for old in known for ln in lines), lines  # known before: no line
