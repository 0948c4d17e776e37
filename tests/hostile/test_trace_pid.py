"""``nydus-top trace --pid`` traces containers, not the host (issue 9 item 4): a pid in no
container containerd reports over NRI is refused unless ``--host`` says so on purpose, and a pid
that names another process by the time the mount namespace is joined is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.commands.trace import container_of
from nydus_top.model.node import Container, ContainerState

TRACE = [sys.executable, "-I", "-m", "nydus_top", "trace"]


def _trace(args: list[str], timeout: float = 60) -> tuple[subprocess.Popen, int | None]:
    """Start ``trace`` with a ready fd; (process, pid the tracer reported ready) or None if it
    ended without arming."""
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([*TRACE, *args, "--ready-fd", str(ready_w)], pass_fds=(ready_w,),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(ready_w)
    try:
        ready = os.read(ready_r, 5)
    finally:
        os.close(ready_r)
    return proc, (int.from_bytes(ready[1:5], "little") if ready[:1] == b"R" else None)


def _stop(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


@pytest.fixture
def host_process():
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_host_pid_is_refused_without_host(sandbox_node, host_process) -> None:
    proc, ready = _trace(["--nri-socket", str(sandbox_node.nri_socket), "--pid", str(host_process.pid)])
    out, err = proc.communicate(timeout=60)
    assert ready is None and proc.returncode == 2 and out == b""
    assert err.decode() == (f"nydus-top trace: pid {host_process.pid} is in no container containerd reports "
                            "over NRI (--host traces a host process on purpose)\n")


def test_a_host_pid_is_traced_with_host(host_process) -> None:
    proc, ready = _trace(["--host", "--pid", str(host_process.pid)])
    _, err = _stop(proc)
    assert ready is not None and proc.returncode == 0, err


def test_a_container_pid_known_over_nri_is_traced(sandbox_node, demo_pod) -> None:
    pid = sandbox_node.cri.container_status(demo_pod.container_id).pid
    proc, ready = _trace(["--nri-socket", str(sandbox_node.nri_socket), "--pid", str(pid)])
    out, err = _stop(proc)
    assert ready is not None and proc.returncode == 0, err
    assert all(json.loads(line)["kind"] in ("open", "exec", "read") for line in out.splitlines())


def test_without_nri_only_host_traces(tmp_path: Path, host_process) -> None:
    proc, ready = _trace(["--nri-socket", str(tmp_path / "absent.sock"), "--timeout", "1",
                          "--pid", str(host_process.pid)])
    _, err = proc.communicate(timeout=60)
    assert ready is None and proc.returncode == 2
    assert err.count(b"\n") == 1 and b"cannot ask containerd over NRI" in err and b"--host" in err
    socket = str(tmp_path / "absent.sock").encode()
    assert b"cannot ask containerd over NRI at " + socket + b": [Errno 2] No such file or directory" in err
    assert b"--nri-socket PATH or $NYDUS_TOP_NRI_SOCKET" in err  # where the socket is named


def test_container_of_matches_the_pid_or_the_cgroup() -> None:
    cid = "a" * 64
    known = [Container(cid, "p", "c", "img", ContainerState.RUNNING, pid=40)]
    assert container_of(40, "0::/other\n", known) == cid
    assert container_of(41, f"0::/kubepods/cri-containerd-{cid}.scope\n", known) == cid
    assert container_of(42, "0::/user.slice/session-1.scope\n", known) is None


# Runs in a child: arm() seals imports and joins a mount namespace, the test process must not.
REUSED = """
import os, subprocess, sys
from nydus_top.tracing import file_session as trace_session
first = subprocess.Popen(["sleep", "600"])
pidfd = os.pidfd_open(first.pid)  # opened when the pid was checked
first.kill(); first.wait()        # it exits; its number may now name any process...
other = subprocess.Popen(["sleep", "600"])  # ...like this one, a host process
try:
    trace_session.arm(other.pid, pidfd=pidfd)
    print("armed")
except trace_session.ArmError as err:
    print("refused:", err)
other.kill()
sys.stdout.flush()
os._exit(0)
"""


def test_a_pid_that_names_another_process_by_the_join_is_refused() -> None:
    done = subprocess.run([sys.executable, "-I", "-c", REUSED], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused: pid ") and done.stdout.rstrip().endswith("exited"), done.stderr
