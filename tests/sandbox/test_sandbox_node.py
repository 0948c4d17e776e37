"""The sandbox node, for real: containerd 1.7 or 2.1 with NRI, pods through CRI, and a clean ``down``.

Start-up, pods and clean-up are checked against each containerd version; the command-line plumbing
against the default one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from sandbox import images
from sandbox.node import CONTAINERD_SUITES, SHIM_SOCKETS, SandboxError, SandboxNode, processes_mentioning

ROOT = Path(__file__).resolve().parents[2]


def _sockets_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_socket()]


def _assert_nothing_left(node: SandboxNode, container_pids: list[int]) -> None:
    assert node.pid() is None
    assert processes_mentioning(str(node.dir)) == []
    for pid in container_pids:
        assert not Path(f"/proc/{pid}").exists(), f"container process {pid} survived"
    assert node.mounts() == []
    assert node.cgroup_dirs() == []
    assert _sockets_under(node.dir) == []
    created = node.dir / "created-host-dirs"
    if created.exists():  # kept only while another containerd still has shim sockets there
        for path in created.read_text().split():
            assert any(Path(path).iterdir())


def _other(version: str) -> str:
    return next(v for v in sorted(CONTAINERD_SUITES) if v != version)


@pytest.fixture
def new_node(tmp_path: Path, containerd_version: str) -> Iterator[Callable[..., SandboxNode]]:
    """Makes extra nodes (not started) in the test's directory; each is downed at teardown.

    They run the test's containerd version unless ``make(name, version)`` says otherwise.
    """
    made: list[SandboxNode] = []

    def make(name: str, version: str = containerd_version) -> SandboxNode:
        made.append(SandboxNode(tmp_path / name, version))
        return made[-1]

    yield make
    for node in made:
        node.down(purge=True)


@pytest.mark.every_containerd
def test_up_runs_containerd_with_nri(sandbox_node: SandboxNode, containerd_version: str) -> None:
    pid = sandbox_node.pid()
    assert pid is not None and Path(f"/proc/{pid}").exists()
    assert sandbox_node.nri_socket.is_socket()
    assert sandbox_node.nri_socket.is_relative_to(sandbox_node.dir)
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sandbox_node.nri_socket))
    assert "created NRI interface" in sandbox_node.log.read_text()
    assert sandbox_node.cri.version().startswith(f"containerd {containerd_version}.")
    ctr_version = subprocess.run([str(sandbox_node.ctr), "--version"], capture_output=True, text=True, check=True)
    assert f" {containerd_version}." in ctr_version.stdout
    assert sandbox_node.optimizer_plugin.name == "optimizer-nri-plugin"
    assert os.access(sandbox_node.optimizer_plugin, os.X_OK)


@pytest.mark.every_containerd
def test_demo_pod_runs_through_cri(sandbox_node: SandboxNode, demo_pod) -> None:
    cri = sandbox_node.cri
    status = cri.container_status(demo_pod.container_id)
    assert status.state == "RUNNING"
    assert Path(f"/proc/{status.pid}").exists()
    # The container's process sees the demo image as its root and lives in this node's cgroup.
    assert Path(f"/proc/{status.pid}/root/app/start.sh").is_file()
    assert f"{sandbox_node.cgroup_parent}/" in Path(f"/proc/{status.pid}/cgroup").read_text()
    assert demo_pod.pod_id in [p.id for p in cri.pods()]
    assert [c.name for c in cri.containers(demo_pod.pod_id)] == ["demo"]
    assert images.DEMO_READY_LINE in Path(status.log_path).read_text()


def test_up_twice_is_harmless(sandbox_node: SandboxNode) -> None:
    pid = sandbox_node.pid()
    assert SandboxNode(sandbox_node.dir).up() is False
    assert sandbox_node.pid() == pid
    sandbox_node.pid_file.unlink()  # found by its command line even without the pid file
    assert SandboxNode(sandbox_node.dir).up() is False
    assert sandbox_node.pid_file.read_text() == f"{pid}\n"
    assert processes_mentioning(str(sandbox_node.config)) == [pid]
    status = subprocess.run([str(ROOT / "scripts/sandbox-node"), "status", "--dir", str(sandbox_node.dir)],
                            capture_output=True, text=True)
    assert (status.returncode, status.stdout.strip()) == (0, f"running (pid {pid})")
    listed = subprocess.run([str(ROOT / "scripts/sandbox-node"), "list"], capture_output=True, text=True,
                            check=True).stdout
    assert f"{pid}\t{sandbox_node.dir}\n" in listed


@pytest.mark.every_containerd
def test_second_node_coexists_and_down_leaves_nothing(sandbox_node: SandboxNode, demo_pod, new_node) -> None:
    # The other containerd version: both share /run/containerd/s for their shim sockets.
    node = new_node("second node", _other(sandbox_node.containerd))  # a space: mountinfo escapes it
    assert node.up() is True
    assert node.cri.version().startswith(f"containerd {node.containerd}.")
    assert node.cgroup_parent != sandbox_node.cgroup_parent
    started = node.run_demo()
    pids = [node.cri.container_status(started.container_id).pid]
    assert node.mounts() and node.cgroup_dirs()
    sockets = node.shim_sockets()
    assert sockets and all(s.is_socket() for s in sockets)

    assert node.down() is True
    _assert_nothing_left(node, pids)
    assert not any(s.exists() for s in sockets)
    # The session node and its pod are untouched.
    assert sandbox_node.cri.container_status(demo_pod.container_id).state == "RUNNING"
    assert SHIM_SOCKETS.is_dir()


@pytest.mark.every_containerd
def test_down_after_containerd_crash_cleans_up(new_node) -> None:
    node = new_node("crashed")
    node.up()
    started = node.run_demo()
    container_pid = node.cri.container_status(started.container_id).pid
    [shim_socket] = node.shim_sockets()
    assert shim_socket.is_socket()
    pid = node.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    node._proc.wait()  # reap it: the test process is containerd's parent here

    assert node.pid() is None
    assert Path(f"/proc/{container_pid}").exists()  # shims and containers outlive containerd
    assert node.down(purge=True) is False
    _assert_nothing_left(node, [container_pid])
    assert not node.dir.exists()
    assert not shim_socket.exists()


def test_stale_pid_file_is_not_a_running_node(tmp_path: Path) -> None:
    node = SandboxNode(tmp_path)
    node.pid_file.write_text(f"{os.getpid()}\n")
    assert node.pid() is None
    status = subprocess.run([str(ROOT / "scripts/sandbox-node"), "status", "--dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert (status.returncode, status.stdout.strip()) == (3, "not running")


def test_env_prints_shell_assignments(sandbox_node: SandboxNode) -> None:
    out = subprocess.run([str(ROOT / "scripts/sandbox-node"), "env", "--dir", str(sandbox_node.dir)],
                         capture_output=True, text=True, check=True).stdout
    sourced = subprocess.run(["bash", "-c", f'{out}\nprintf "%s\\n" "$NRI_SOCKET" "$CONTAINERD_SOCKET" '
                              '"$OPTIMIZER_NRI_PLUGIN" "$DEMO_IMAGE" "$PAUSE_IMAGE" "$SANDBOX_DIR" '
                              '"$CONTAINERD_VERSION" "$CTR"'],
                             capture_output=True, text=True, check=True).stdout.split("\n")
    assert sourced[:8] == [str(sandbox_node.nri_socket), str(sandbox_node.cri_socket),
                           str(sandbox_node.optimizer_plugin), images.DEMO_IMAGE, images.PAUSE_IMAGE,
                           str(sandbox_node.dir), sandbox_node.containerd, str(sandbox_node.ctr)]
    exported = subprocess.run(["bash", "-c", f"{out}\nprintenv NYDUS_TOP_NRI_SOCKET NYDUS_TOP_CONTAINERD_ADDRESS"],
                              capture_output=True, text=True, check=True).stdout  # what nydus-top reads
    assert exported == f"{sandbox_node.nri_socket}\n{sandbox_node.containerd_socket}\n"


def test_custom_image_runs(sandbox_node: SandboxNode) -> None:
    ref = sandbox_node.load_image(
        "nydus-top.local/custom-test:1",
        {**images.busybox_files(sandbox_node.binaries.busybox),
         "/data/hello.txt": b"hello from a custom image\n"},
        ["/bin/sh", "-c", "cat /data/hello.txt; exec sleep 2147483647"],
    )
    started = sandbox_node.cri.run("custom", ref)
    try:
        log = sandbox_node.wait_for_log(started.container_id, "hello from a custom image")
        assert "stdout" in log
    finally:
        sandbox_node.cri.remove_pod(started.pod_id)
    assert started.pod_id not in [p.id for p in sandbox_node.cri.pods()]


def test_concurrent_ups_start_one_containerd(new_node) -> None:
    node = new_node("raced")
    command = [str(ROOT / "scripts/sandbox-node"), "up", "--dir", str(node.dir), "--containerd", node.containerd]
    ups = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [up.communicate()[1] for up in ups]
    assert [up.returncode for up in ups] == [0, 0, 0], outputs
    assert sum(f"containerd {node.containerd} started" in out for out in outputs) == 1
    assert processes_mentioning(str(node.config)) == [node.pid()]


def test_too_long_directory_is_refused_clearly(new_node) -> None:
    node = new_node("d" * 100)
    out = subprocess.run([str(ROOT / "scripts/sandbox-node"), "up", "--dir", str(node.dir)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "too long a path for unix sockets" in out.stderr
    assert node.pid() is None


def test_switching_containerd_version_needs_a_down(new_node, containerd_version: str) -> None:
    node = new_node("switched")
    other = _other(containerd_version)
    node.up()
    pid = node.pid()
    with pytest.raises(SandboxError, match=f"runs containerd {containerd_version}; `down` it before starting {other}"):
        SandboxNode(node.dir, other).up()
    assert node.pid() == pid
    up = subprocess.run([str(ROOT / "scripts/sandbox-node"), "up", "--dir", str(node.dir)],
                        env={**os.environ, "SANDBOX_CONTAINERD": other}, capture_output=True, text=True)
    assert (up.returncode, up.stderr.count("\n")) == (1, 1) and f"runs containerd {containerd_version}" in up.stderr

    node.down()
    switched = SandboxNode(node.dir, other)
    assert switched.up() is True
    try:
        assert switched.cri.version().startswith(f"containerd {other}.")
        started = switched.run_demo()  # the images were imported again into the new version's store
        assert switched.cri.container_status(started.container_id).state == "RUNNING"
        # Without a version, the node keeps its own (not the default).
        assert SandboxNode(node.dir).up() is False
        assert SandboxNode(node.dir).containerd == other
    finally:
        switched.down()


def _sandbox_node_cli(node: SandboxNode, *args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts/sandbox-node"), *args, "--dir", str(node.dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _demo_pods(node: SandboxNode) -> list[str]:
    return [p.id for p in node.cri.pods() if p.name == "demo" and p.namespace == "default"]


def test_demo_restart_replaces_the_pod_and_leaves_no_empty_one(sandbox_node: SandboxNode) -> None:
    try:
        _sandbox_node_cli(sandbox_node, "demo")
        [first] = _demo_pods(sandbox_node)
        assert "already running" in _sandbox_node_cli(sandbox_node, "demo")
        assert "removed demo pod" in _sandbox_node_cli(sandbox_node, "demo", "--restart")
        [second] = _demo_pods(sandbox_node)
        assert second != first
        [container] = sandbox_node.cri.containers(second)
        sandbox_node.cri.stop_container(container.id)  # the demo ended: its pod stays behind empty
        _sandbox_node_cli(sandbox_node, "demo")
        [third] = _demo_pods(sandbox_node)
        assert third != second
        assert [c.state for c in sandbox_node.cri.containers(third)] == ["RUNNING"]
    finally:
        for pod in _demo_pods(sandbox_node):
            sandbox_node.cri.remove_pod(pod)


def test_a_trace_attached_to_the_running_demo_shows_its_periodic_reads(sandbox_node: SandboxNode, demo_pod) -> None:
    import json
    import select
    import sys

    pid = sandbox_node.cri.container_status(demo_pod.container_id).pid
    # trace asks the node's NRI whether the pid is a container's (a host pid needs --host).
    proc = subprocess.Popen([sys.executable, "-m", "nydus_top", "trace", "--pid", str(pid),
                             "--nri-socket", str(sandbox_node.nri_socket)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        seen: set[str] = set()
        pending = b""
        while not set(images.DEMO_PERIODIC_FILES) <= seen:
            ready, _, _ = select.select([proc.stdout], [], [], 5 * images.DEMO_PERIOD_S)
            assert ready, f"no access within {5 * images.DEMO_PERIOD_S} s; saw {sorted(seen)}"
            data = os.read(proc.stdout.fileno(), 65536)
            assert data, f"trace ended: {proc.stderr.read().decode(errors='replace')}"
            *lines, pending = (pending + data).split(b"\n")
            seen.update(json.loads(line)["path"] for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


@pytest.mark.every_containerd
def test_remove_pod_whose_shim_died(sandbox_node: SandboxNode) -> None:
    """A shim that dies under a running container (the CI saw "failed to kill container ...: ttrpc:
    closed" from StopPodSandbox) leaves containerd settling the container for a second or two;
    remove_pod waits that out instead of failing the caller's teardown."""
    started = sandbox_node.run_demo("shimless")
    pid = sandbox_node.cri.container_status(started.container_id).pid
    shim = psutil.Process(pid).ppid()
    assert "containerd-shim" in " ".join(psutil.Process(shim).cmdline())
    os.kill(shim, signal.SIGKILL)
    sandbox_node.cri.remove_pod(started.pod_id)
    assert started.pod_id not in [p.id for p in sandbox_node.cri.pods()]
