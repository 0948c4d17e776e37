"""Running start-up recorders against a sandbox node: ``nydus-top record`` and Debian's
``optimizer-nri-plugin`` (with nydus-top's tracer as its ``server_path``), and the workload.

Shared by ``tests/record`` and ``bench/startup_capture.py``. Both plugins connect to the
node's NRI socket as external plugins; the optimizer plugin cannot be told a socket path, so it
gets a socket we connected, by fd in ``NRI_PLUGIN_SOCKET`` (as containerd does for plugins it
launches).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testkit import workload

WORKLOAD_IMAGE = "nydus-top.local/startup-workload:1"


def load_workload(node, build_dir: Path, ref: str = WORKLOAD_IMAGE) -> str:
    """Build the workload binary and image and import it into *node*; returns the reference."""
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = workload.build_binary(build_dir)
    return node.load_image(ref, workload.image_files(binary), workload.command("exit"))


class LineLog:
    """Lines of a child's output pipe, collected on a thread; awaited by content."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("\0EOF")
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float, start: int = 0) -> int:
        """Index of the first line from *start* on containing *text*; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i]:
                        return i
                    if self.lines[i] == "\0EOF":
                        raise EOFError(f"process ended before logging {text!r}:\n" + self.text())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no log line with {text!r} within {timeout}s:\n" + self.text())
                self._cond.wait(left)

    def count(self, text: str) -> int:
        with self._cond:
            return sum(text in line for line in self.lines)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-40:])


@dataclass
class PluginProcess:
    proc: subprocess.Popen[bytes]
    log: LineLog

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_recorder(nri_socket: Path, persist_dir: Path, *, args: Sequence[str] = (),
                   timeout: float = 20.0) -> PluginProcess:
    """``nydus-top record`` as an external plugin; returns once it is synchronized."""
    cmd = [sys.executable, "-m", "nydus_top", "record", "--nri-socket", str(nri_socket),
           "--persist-dir", str(persist_dir), *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    plugin = PluginProcess(proc, LineLog(proc.stderr))
    try:
        plugin.log.wait_for("recording container starts", timeout)
    except BaseException:
        plugin.stop()
        raise
    return plugin


def tracer_server() -> Path:
    """nydus-top's optimizer-compatible tracer executable (``server_path``)."""
    found = shutil.which("nydus-top-tracer", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"nydus-top-tracer not installed next to {sys.executable}")
    return Path(found)


def start_optimizer(plugin: Path, nri_socket: Path, persist_dir: Path, *, server_path: Path | None = None,
                    idx: str = "10", flags: Sequence[str] = (), timeout: float = 20.0) -> PluginProcess:
    """Debian's optimizer-nri-plugin on a socket we connect; returns once it is configured."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(nri_socket))
    fd = sock.fileno()
    env = {"NRI_PLUGIN_SOCKET": str(fd)}
    cmd = [str(plugin), "--name", "optimizer", "--idx", idx, "--server-path", str(server_path or tracer_server()),
           "--persist-dir", str(persist_dir), *flags]
    try:
        proc = subprocess.Popen(cmd, env=env, pass_fds=[fd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    finally:
        sock.close()
    plugin_proc = PluginProcess(proc, LineLog(proc.stdout))
    try:
        plugin_proc.log.wait_for("Started plugin", timeout)
    except BaseException:
        plugin_proc.stop()
        raise
    return plugin_proc


def wait_exited(cri, container_id: str, timeout: float = 20.0) -> int:
    """Wait for a container to exit (CRI has no wait call: polls its status); its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        status = cri.container_status(container_id)
        if status.state == "EXITED":
            return status.exit_code
        if time.monotonic() > deadline:
            raise TimeoutError(f"container {container_id[:12]} still {status.state} after {timeout}s")
        time.sleep(0.02)


def wait_file(path: Path, timeout: float = 10.0) -> bytes:
    """Content of *path* once it exists (result files are renamed into place complete)."""
    fd = _inotify_dir(path.parent)
    try:
        deadline = time.monotonic() + timeout
        while not path.exists():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{path} not written within {timeout}s")
            if fd is not None:
                if select.select([fd], [], [], left)[0]:
                    os.read(fd, 65536)
            else:
                time.sleep(0.02)
        return path.read_bytes()
    finally:
        if fd is not None:
            os.close(fd)


def wait_in_file(path: Path, *texts: str, timeout: float = 10.0) -> str:
    """The first line of the text file *path* containing all *texts*, once it is written."""
    fd = _inotify_dir(path.parent, modify=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                for line in path.read_text(errors="replace").splitlines():
                    if all(t in line for t in texts):
                        return line
            except FileNotFoundError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.exists() else "(no file)"
                raise TimeoutError(f"no line with {texts!r} in {path} within {timeout}s; it ends:\n{tail}")
            if fd is not None and select.select([fd], [], [], left)[0]:
                os.read(fd, 65536)
            elif fd is None:
                time.sleep(0.02)
    finally:
        if fd is not None:
            os.close(fd)


def _inotify_dir(directory: Path, modify: bool = False) -> int | None:
    """An inotify fd watching *directory* for new names (None if it does not exist yet)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        return None
    in_create, in_moved_to, in_modify = 0x100, 0x80, 0x2
    mask = in_create | in_moved_to | (in_modify if modify else 0)
    if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
        os.close(fd)
        return None
    return fd
