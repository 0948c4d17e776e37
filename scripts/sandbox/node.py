"""Start, stop and describe a private containerd node with NRI (1.7 or 2.1), all its state under one directory.

``python -m sandbox.node up|down|status|env|demo [--dir DIR] [--containerd 1.7|2.1]`` (wrapped by
``scripts/sandbox-node``). Several nodes with different directories coexist on one machine, of either
version: each has its own sockets, root, state, runc root and cgroup parent; only
``/run/containerd/s`` (where containerd 1.7 and 2.1 always put shim sockets) is shared, and removed
on ``down`` only by the node that created it, once empty.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from nydus_top.tracing.overlay import parse_mountinfo
from sandbox import images, stargz
from sandbox.aptfetch import AptCache, cache_dir, file_lock
from sandbox.slowlink import Link, LinkError, SlowLink

if TYPE_CHECKING:  # grpc is a test-only dependency, imported when a CRI client is made
    from sandbox.cri import CriClient, RunningContainer

DEFAULT_DIR = Path("/var/lib/nydus-top/sandbox")
# containerd version -> the Debian suite whose `containerd` package provides it (bookworm has only 1.6).
CONTAINERD_SUITES = {"1.7": "trixie", "2.1": "forky"}
DEFAULT_CONTAINERD = "1.7"
STARGZ = "stargz"  # the proxy snapshotter's name in containerd
DEFAULT_LINK = "100mbit,20ms"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
RUNC = Path("/usr/sbin/runc")
SHIM_SOCKETS = Path("/run/containerd/s")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_MNT_DETACH = 2
_SUN_PATH_MAX = 107  # bytes of a unix socket path, without the terminating NUL
# A log line saying that containerd runs without a plugin the sandbox exists for: 1.7 names the plugin
# in the message, 2.x in an ``id=`` field.
_FATAL_PLUGIN = re.compile(r'failed to load plugin (io\.containerd\.grpc\.v1\.cri"|io\.containerd\.nri)'
                           r'|msg="failed to load plugin" .*\bid=io\.containerd\.(grpc\.v1\.cri|nri\.v1\.nri)(\s|$)')


def is_fatal_plugin_failure(log_line: str) -> bool:
    """Whether a containerd log line says that CRI or NRI failed to load."""
    return _FATAL_PLUGIN.search(log_line) is not None


class SandboxError(RuntimeError):
    """The node could not be brought up or down; the message says why in one line."""


@dataclass(frozen=True)
class Binaries:
    """Programs the node runs, from the shared package cache."""

    containerd_dir: Path
    optimizer_plugin: Path
    busybox: Path

    @property
    def containerd(self) -> Path:
        return self.containerd_dir / "containerd"

    @property
    def ctr(self) -> Path:
        return self.containerd_dir / "ctr"


def fetch_binaries(containerd: str = DEFAULT_CONTAINERD) -> Binaries:
    """containerd (1.7 or 2.1) with ctr and the runc shim, the reference optimizer plugin and busybox."""
    if not RUNC.exists():
        raise SandboxError(f"{RUNC} missing: install Debian's runc (scripts/setup does)")
    suite = _suite(containerd)
    cache = AptCache()
    package = cache.unpacked("containerd", suite)
    version = package.name.removeprefix("containerd_").split("%")[-1]  # <epoch>%<version> when there is an epoch
    if not version.startswith(f"{containerd}."):
        raise SandboxError(f"Debian {suite} has containerd {version}, not {containerd}.x")
    return Binaries(
        containerd_dir=package / "usr/bin",
        optimizer_plugin=cache.unpacked("nydus-snapshotter", "trixie") / "usr/bin/optimizer-nri-plugin",
        busybox=cache.unpacked("busybox-static", "bookworm") / "bin/busybox",
    )


def _suite(containerd: str) -> str:
    try:
        return CONTAINERD_SUITES[containerd]
    except KeyError:
        choices = " or ".join(CONTAINERD_SUITES)
        raise SandboxError(f"containerd {containerd!r} not supported (choose {choices})") from None


def containerd_config(d: Path, pause_image: str, containerd: str = DEFAULT_CONTAINERD, lazy: bool = False) -> str:
    """containerd's TOML config keeping every path of the node under ``d`` (version 2 for 1.7, 3 for 2.1).

    ``lazy``: the stargz snapshotter (``d/stargz/stargz.sock``) is a proxy snapshotter and CRI's
    snapshotter, with snapshot annotations on (so CRI pulls label layers for lazy pulling), and CRI
    reads registry hosts from ``d/certs.d`` (where the slow registry is said to be plain HTTP).
    """
    major2 = containerd.split(".")[0] == "2"
    text = (_config_v3 if major2 else _config_v2)(d, pause_image)
    if not lazy:
        return text
    section = ('[plugins."io.containerd.cri.v1.images"]' if major2
               else '[plugins."io.containerd.grpc.v1.cri".containerd]')
    indent = "  " if major2 else "      "
    text = text.replace(f'{section}\n{indent}snapshotter = "overlayfs"\n',
                        f'{section}\n{indent}snapshotter = "{STARGZ}"\n{indent}disable_snapshot_annotations = false\n')
    registry = ('[plugins."io.containerd.cri.v1.images".registry]' if major2
                else '[plugins."io.containerd.grpc.v1.cri".registry]')
    text += (f'{registry}\n  config_path = "{d}/certs.d"\n'
             f'[proxy_plugins.{STARGZ}]\n  type = "snapshot"\n  address = "{d}/stargz/stargz.sock"\n')
    if major2:  # 2.x unpacks (ctr import, CRI pulls) through the transfer service, for the snapshotters listed here
        platform = f"linux/{_GOARCH.get(os.uname().machine, os.uname().machine)}"
        for snapshotter in (STARGZ, "overlayfs"):
            text += (f'[[plugins."io.containerd.transfer.v1.local".unpack_config]]\n'
                     f'  platform = "{platform}"\n  snapshotter = "{snapshotter}"\n')
    return text


def stargz_config(registry: str) -> str:
    """The snapshotter's TOML: the slow registry ``registry`` (HOST:PORT) is plain HTTP."""
    return f'[[resolver.host."{registry}".mirrors]]\n  host = "{registry}"\n  insecure = true\n'


def hosts_toml(registry: str) -> str:
    """containerd's ``certs.d/HOST:PORT/hosts.toml`` for a plain-HTTP registry."""
    return f'server = "http://{registry}"\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve", "push"]\n'


def _config_v2(d: Path, pause_image: str) -> str:
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause_image}"
    disable_apparmor = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "{RUNC}"
          Root = "{d}/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{d}/cni/bin"
      conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.nri.v1.nri"]
    disable = false
    disable_connections = false
    plugin_config_path = "{d}/nri/conf.d"
    plugin_path = "{d}/nri/plugins"
    plugin_registration_timeout = "5s"
    plugin_request_timeout = "2s"
    socket_path = "{d}/nri/nri.sock"
"""


def _config_v3(d: Path, pause_image: str) -> str:
    """containerd 2.x: the CRI plugin is split into ``cri.v1.images`` and ``cri.v1.runtime``; NRI is on by default."""
    return f"""version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.erofs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause_image}"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{d}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{d}/cni/bin"]
    conf_dir = "{d}/cni/net.d"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  plugin_config_path = "{d}/nri/conf.d"
  plugin_path = "{d}/nri/plugins"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
  socket_path = "{d}/nri/nri.sock"
"""


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount in our mount namespace."""
    return [(m.mount_point, m.fstype) for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())]


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def _pids() -> Iterator[int]:
    yield from psutil.pids()


def processes_mentioning(text: str) -> list[int]:
    """Pids of the processes whose command line contains ``text``."""
    return [pid for pid in _pids() if any(text in arg for arg in _cmdline(pid))]


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` exists (zombies count as gone); returns the survivors."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive:
        alive = [p for p in alive if _alive(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class SandboxNode:
    """One containerd instance with NRI whose sockets, state, logs and cgroups belong to ``dir``.

    ``containerd`` chooses the version ("1.7" or "2.1"); None means the one the node last ran
    (recorded in ``dir/containerd-version``), else ``DEFAULT_CONTAINERD``.
    """

    def __init__(self, directory: str | Path = DEFAULT_DIR, containerd: str | None = None, lazy: bool = False,
                 link: str | None = None) -> None:
        if containerd is not None:
            _suite(containerd)  # an unknown version fails here, before anything is touched
        self._requested = containerd
        self.dir = Path(directory).absolute()
        self.lazy_file = self.dir / "lazy"  # holds the link profile while the node runs lazily
        self._lazy_requested = lazy
        self._link = Link.parse(link or DEFAULT_LINK) if lazy else None
        self.stargz_dir = self.dir / "stargz"
        self.stargz_socket = self.stargz_dir / "stargz.sock"
        self.stargz_metrics_socket = self.stargz_dir / "metrics.sock"
        self.stargz_root = self.stargz_dir / "root"
        self.stargz_config = self.stargz_dir / "config.toml"
        self.stargz_log = self.dir / "stargz.log"
        self.stargz_pid_file = self.stargz_dir / "pid"
        self.slow_link = SlowLink(self.dir / "registry", self._link)
        self.version_file = self.dir / "containerd-version"
        self.config = self.dir / "config.toml"
        self.containerd_socket = self.dir / "containerd.sock"
        self.nri_socket = self.dir / "nri" / "nri.sock"
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.pod_logs = self.dir / "pods"
        self.log = self.dir / "containerd.log"
        self.pid_file = self.dir / "containerd.pid"
        self._created_file = self.dir / "created-host-dirs"
        tag = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        self.cgroup_parent = f"/nydus-top-sandbox-{tag}"
        self._log_start: int | None = None  # log size when this object started containerd
        self._proc: subprocess.Popen[bytes] | None = None

    def recorded_containerd(self) -> str | None:
        """The containerd version this node last started with, if any."""
        recorded = _read(self.version_file).strip()
        if not recorded and _read(self.config).startswith("version = 2\n"):
            recorded = "1.7"  # started before the version was recorded
        return recorded if recorded in CONTAINERD_SUITES else None

    @cached_property
    def containerd(self) -> str:
        """The containerd version ("1.7" or "2.1") this node runs or will run."""
        return self._requested or self.recorded_containerd() or DEFAULT_CONTAINERD

    @cached_property
    def binaries(self) -> Binaries:
        return fetch_binaries(self.containerd)

    @property
    def lazy(self) -> bool:
        """Whether this node runs (or will run) with the stargz snapshotter and the slow registry."""
        return self._lazy_requested or self.lazy_file.exists()

    @property
    def snapshotter(self) -> str:
        """The snapshotter CRI and image imports use on this node."""
        return STARGZ if self.lazy else "overlayfs"

    @cached_property
    def ctr_remote(self) -> Path:
        """``ctr-remote`` (Debian's stargz-snapshotter package): convert, optimize, rpull, push."""
        return stargz.ctr_remote()

    @property
    def registry(self) -> str:
        """``HOST:PORT`` of the registry behind the slow link (a lazy node only)."""
        return self.slow_link.host

    @property
    def ctr(self) -> Path:
        return self.binaries.ctr

    @property
    def optimizer_plugin(self) -> Path:
        return self.binaries.optimizer_plugin

    def env(self) -> dict[str, str]:
        """Paths and names other tools need, as environment-style keys."""
        return {
            "SANDBOX_DIR": str(self.dir),
            "CONTAINERD_VERSION": self.containerd,
            "CONTAINERD_SOCKET": str(self.containerd_socket),
            "CONTAINERD_ROOT": str(self.root),
            "CONTAINERD_STATE": str(self.state),
            "NRI_SOCKET": str(self.nri_socket),
            "NYDUS_TOP_NRI_SOCKET": str(self.nri_socket),  # what nydus-top reads
            "NYDUS_TOP_CONTAINERD_ADDRESS": str(self.containerd_socket),  # an image's other references, ctr-remote
            "CTR": str(self.ctr),
            "OPTIMIZER_NRI_PLUGIN": str(self.optimizer_plugin),
            "CGROUP_PARENT": self.cgroup_parent,
            "POD_LOG_DIR": str(self.pod_logs),
            "PAUSE_IMAGE": images.PAUSE_IMAGE,
            "DEMO_IMAGE": images.DEMO_IMAGE,
            "CTR_REMOTE": str(self.ctr_remote),
            "SNAPSHOTTER": self.snapshotter,
            **({"STARGZ_SOCKET": str(self.stargz_socket), "STARGZ_METRICS_SOCKET": str(self.stargz_metrics_socket),
                "STARGZ_LOG": str(self.stargz_log), "SLOW_REGISTRY": str(self.slow_link.state().get("registry", "")),
                "LINK": str(self.slow_link.state().get("link", ""))} if self.lazy else {}),
        }

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise up and down of this node (across processes)."""
        return file_lock(self.dir / ".lock", 2 * (START_TIMEOUT + STOP_TIMEOUT))

    def pid(self) -> int | None:
        """The pid of this node's containerd if it runs (found by pid file, else by its command line)."""
        try:
            recorded = int(self.pid_file.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded is not None and self._is_our_containerd(recorded):
            return recorded
        return next((pid for pid in _pids() if self._is_our_containerd(pid)), None)

    def _is_our_containerd(self, pid: int) -> bool:
        argv = _cmdline(pid)
        return argv[1:] == ["--config", str(self.config)] and argv[0].endswith("/containerd") and _alive(pid)

    @property
    def cri_socket(self) -> Path:
        """The CRI (gRPC) endpoint, which is containerd's socket."""
        return self.containerd_socket

    @cached_property
    def cri(self) -> CriClient:
        """A shared CRI client for this node (see ``cri_client``)."""
        return self.cri_client()

    def cri_client(self, timeout: float = 30.0) -> CriClient:
        """A new CRI client; its pods go to the node's cgroup parent and log directory."""
        from sandbox.cri import CriClient

        return CriClient(self.containerd_socket, cgroup_parent=self.cgroup_parent, log_dir=self.pod_logs,
                         timeout=timeout)

    # ---- up ----

    def up(self, timeout: float = START_TIMEOUT) -> bool:
        """Start containerd and import the images; False if it was already running (then a no-op)."""
        longest = self.containerd_socket.with_name("containerd.sock.ttrpc")
        if len(bytes(longest)) > _SUN_PATH_MAX:
            raise SandboxError(f"{self.dir} is too long a path for unix sockets ({longest})")
        binaries = self.binaries
        daemon = stargz.daemon() if self._lazy_requested else None
        with self._locked():
            pid = self.pid()
            started = pid is None
            recorded = self.recorded_containerd()
            if not started and recorded not in (None, self.containerd):
                raise SandboxError(f"{self.dir} runs containerd {recorded}; `down` it before starting "
                                   f"{self.containerd}")
            if not started and self._lazy_requested != self.lazy_file.exists():
                raise SandboxError(f"{self.dir} runs {'with' if self.lazy_file.exists() else 'without'} the stargz "
                                   f"snapshotter; `down` it first")
            if started:
                self._cleanup()
                if recorded not in (None, self.containerd) or self._lazy_requested:
                    # Another version's image store (its database may not migrate back), or a lazy node's,
                    # whose snapshots lived in the snapshotter's state: a lazy node starts from scratch.
                    _rmtree(self.root)
                self.lazy_file.unlink(missing_ok=True)
                try:
                    if daemon is not None:
                        self._start_lazy(daemon, timeout)
                    self._start(binaries)
                except BaseException:
                    self._stop()
                    raise
            else:
                self.pid_file.write_text(f"{pid}\n")
            try:
                self._wait_ready(timeout)
                self._import_images(binaries)
            except BaseException:
                if started:
                    self._stop()
                raise
            return started

    def _start(self, binaries: Binaries) -> None:
        for sub in ("root", "state", "runc", "opt", "nri/conf.d", "nri/plugins", "cni/bin", "cni/net.d"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.config.write_text(containerd_config(self.dir, images.PAUSE_IMAGE, self.containerd, self.lazy))
        self.version_file.write_text(f"{self.containerd}\n")
        self._create_host_dirs()
        env = {"PATH": f"{binaries.containerd_dir}:/usr/sbin:/usr/bin:/sbin:/bin"}
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            proc = subprocess.Popen([str(binaries.containerd), "--config", str(self.config)], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        self._proc = proc

    def _start_lazy(self, daemon: Path, timeout: float) -> None:
        """The slow registry, then the stargz snapshotter (fresh state) told that registry is plain HTTP."""
        assert self._link is not None
        self.lazy_file.write_text(f"{self._link}\n")
        registry = self.slow_link.up()
        hosts = self.dir / "certs.d" / registry
        _rmtree(self.dir / "certs.d")
        hosts.mkdir(parents=True)
        (hosts / "hosts.toml").write_text(hosts_toml(registry))
        _rmtree(self.stargz_dir)
        self.stargz_dir.mkdir(parents=True)
        self.stargz_config.write_text(stargz_config(registry))
        with open(self.stargz_log, "ab") as log:
            proc = subprocess.Popen([str(daemon), "-address", str(self.stargz_socket), "-root", str(self.stargz_root),
                                     "-config", str(self.stargz_config), "-metrics-socket",
                                     str(self.stargz_metrics_socket), "-log-level", "debug"],
                                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True)
        self.stargz_pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while not self.stargz_socket.is_socket():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SandboxError(f"stargz snapshotter not serving (exit status {proc.poll()}): "
                                   f"{_last_line(self.stargz_log)} (log: {self.stargz_log})")
            time.sleep(0.02)

    def stargz_pid(self) -> int | None:
        """The pid of this node's stargz snapshotter if it runs."""
        try:
            pid = int(self.stargz_pid_file.read_text())
        except (OSError, ValueError):
            return None
        argv = _cmdline(pid)
        return pid if _alive(pid) and str(self.stargz_socket) in argv else None

    def _stop_stargz(self) -> None:
        pid = self.stargz_pid()
        if pid is not None:
            _kill(pid, signal.SIGTERM)
            if _wait_gone([pid], STOP_TIMEOUT):
                _kill(pid, signal.SIGKILL)
                _wait_gone([pid], STOP_TIMEOUT)
        for path in (self.stargz_socket, self.stargz_metrics_socket, self.stargz_pid_file):
            path.unlink(missing_ok=True)

    def stargz_metrics(self) -> str:
        """The snapshotter's Prometheus metrics, as text (from its unix socket)."""
        import http.client
        import socket

        class _Unix(http.client.HTTPConnection):
            def connect(self_inner) -> None:
                self_inner.sock = socket.socket(socket.AF_UNIX)
                self_inner.sock.settimeout(10)
                self_inner.sock.connect(str(self.stargz_metrics_socket))

        conn = _Unix("localhost", timeout=10)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode(errors="replace")
        finally:
            conn.close()

    def _create_host_dirs(self) -> None:
        """Create /run/containerd and its s/ unless present, remembering which ones this node made."""
        created = []
        for path in (SHIM_SOCKETS.parent, SHIM_SOCKETS):
            try:
                path.mkdir(mode=0o711)
                created.append(str(path))
            except FileExistsError:
                pass
        if created:
            self._created_file.write_text("".join(f"{p}\n" for p in created))

    def _wait_ready(self, timeout: float) -> None:
        """Wait for the NRI socket and a CRI Version answer; fail early if containerd exits."""
        deadline = time.monotonic() + timeout
        with self.cri_client(timeout=1.0) as client:
            while True:
                # Our own child may not have exec'd containerd yet, so ask it rather than /proc.
                if (self._proc.poll() is not None) if self._proc else self.pid() is None:
                    raise SandboxError(f"containerd exited during start-up: {self._log_tail()}")
                new_log = _read(self.log, self._log_start) if self._log_start is not None else ""
                if any(is_fatal_plugin_failure(line) for line in new_log.splitlines()):
                    raise SandboxError(f"containerd started without CRI or NRI: {self._log_tail()}")
                if self.nri_socket.is_socket():
                    try:
                        client.version(timeout=1.0)
                        return
                    except Exception:  # noqa: BLE001 - grpc.RpcError while the CRI plugin is still starting
                        pass
                if time.monotonic() > deadline:
                    raise SandboxError(f"containerd not ready after {timeout:.0f}s: {self._log_tail()}")
                time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in lines
                  if "level=error" in line or "level=fatal" in line or is_fatal_plugin_failure(line)]
        return (errors or lines or ["(empty log)"])[-1] + f" (log: {self.log})"

    def _import_images(self, binaries: Binaries) -> None:
        """Import the pause and demo images unless the node has them already, with the same digest."""
        present = images.list_images(self)
        key = hashlib.sha256(Path(images.__file__).read_bytes() + bytes(binaries.busybox)).hexdigest()[:12]
        for build, ref in ((images.pause_image, images.PAUSE_IMAGE), (images.demo_image, images.DEMO_IMAGE)):
            # Shared by all nodes, rebuilt when images.py or busybox change.
            archive = cache_dir() / "images" / f"{build.__name__}-{key}.tar"
            if not archive.exists():
                build(binaries.busybox, archive)
                for stale in archive.parent.glob(f"{build.__name__}-*.tar"):
                    if stale != archive:
                        stale.unlink(missing_ok=True)
            if present.get(ref) != images.archive_digest(archive):
                images.import_image(self, archive)

    def load_image(self, ref: str, files: Mapping[str, images.Content], entrypoint: Sequence[str]) -> str:
        """Build an image from ``files`` and import it into this (running) node; returns ``ref``."""
        archive = self.dir / "images" / (hashlib.sha256(ref.encode()).hexdigest()[:16] + ".tar")
        images.build_image(ref, files, entrypoint, archive)
        images.import_image(self, archive)
        return ref

    # ---- down ----

    def down(self, purge: bool = False) -> bool:
        """Remove all pods, stop containerd and clean up; False if it was not running.

        Images, config and log stay for a quick next ``up`` unless ``purge`` removes the directory.
        """
        if not self.dir.is_dir() and self.pid() is None:
            return False
        with self._locked():
            running = self.pid() is not None
            if running:
                try:
                    with self.cri_client(timeout=STOP_TIMEOUT) as client:
                        client.remove_all()
                except Exception as exc:  # noqa: BLE001 - containerd unresponsive: the cleanup below still applies
                    reason = exc.details() if hasattr(exc, "details") else str(exc)  # grpc.RpcError
                    print(f"sandbox-node: removing pods through CRI failed ({reason}); killing them",
                          file=sys.stderr)
            self._stop()
            if self.lazy_file.exists():
                # Its image store names snapshots that lived in the snapshotter's state, which goes now.
                _rmtree(self.root)
                _rmtree(self.stargz_dir)
                self.lazy_file.unlink()
            if purge:
                _rmtree(self.dir)
            return running

    def _stop(self) -> None:
        # A child of ours is stopped by its pid even before it has exec'd containerd.
        pid = self._proc.pid if self._proc is not None and self._proc.poll() is None else self.pid()
        if pid is not None:
            _kill(pid, signal.SIGTERM)
            if _wait_gone([pid], STOP_TIMEOUT):
                _kill(pid, signal.SIGKILL)
                _wait_gone([pid], STOP_TIMEOUT)
        if self._proc is not None:
            self._proc.wait(STOP_TIMEOUT)
            self._proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        """Remove every trace of a node that is not running: shims, containers, mounts, cgroups, sockets."""
        shims = [p for p in _pids() if self._is_our_shim(_cmdline(p))]
        for pid in shims:
            _kill(pid, signal.SIGKILL)
        _wait_gone(shims, STOP_TIMEOUT)
        for socket in self.shim_sockets():  # a killed shim leaves its socket behind
            socket.unlink(missing_ok=True)
        self._remove_cgroups()
        self._unmount_all()
        self._stop_stargz()
        self._unmount_all()  # any FUSE mount the snapshotter made while it stopped
        self.slow_link.down()
        for path in (self.containerd_socket, self.containerd_socket.with_name("containerd.sock.ttrpc"),
                     self.nri_socket, self.pid_file):
            path.unlink(missing_ok=True)
        for sub in ("state", "runc", "pods"):
            _rmtree(self.dir / sub)
        self._remove_host_dirs()

    def shim_sockets(self) -> list[Path]:
        """Sockets of this node's shims, as recorded in its task state (under /run/containerd/s).

        containerd 1.7 writes each task's shim address to ``address``, 2.x to ``bootstrap.json``.
        """
        sockets = set()  # a pod's containers share its shim
        for task in self.state.glob("io.containerd.runtime.v2.task/*/*"):
            address = _read(task / "address").strip() or _bootstrap_address(task / "bootstrap.json")
            path = Path(address.removeprefix("unix://"))
            if path.parent == SHIM_SOCKETS:
                sockets.add(path)
        return sorted(sockets)

    def _is_our_shim(self, argv: list[str]) -> bool:
        return bool(argv) and "containerd-shim" in Path(argv[0]).name and str(self.containerd_socket) in argv

    def cgroup_dirs(self) -> list[Path]:
        """This node's cgroup parent in every mounted cgroup hierarchy where it exists."""
        found = []
        for mount_point, fstype in _mounts():
            path = Path(mount_point + self.cgroup_parent)
            if fstype in ("cgroup", "cgroup2") and path.is_dir():
                found.append(path)
        return found

    def _remove_cgroups(self) -> None:
        """Kill whatever still runs in this node's cgroups, then remove them, deepest first."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            dirs = sorted({d for top in self.cgroup_dirs() for d in _walk_dirs(top)},
                          key=lambda p: len(p.parts), reverse=True)
            if not dirs:
                return
            pids = {int(pid) for d in dirs for pid in _read(d / "cgroup.procs").split()}
            for pid in pids:
                _kill(pid, signal.SIGKILL)
            _wait_gone(sorted(pids), STOP_TIMEOUT)
            for d in dirs:
                try:
                    d.rmdir()
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOENT):
                        raise
            if time.monotonic() > deadline:
                raise SandboxError(f"cgroups {', '.join(map(str, dirs))} could not be removed")
            time.sleep(0.02)

    def mounts(self) -> list[str]:
        """Mount points inside this node's directory."""
        prefix = f"{self.dir}/"
        return [m for m, _ in _mounts() if m.startswith(prefix)]

    def _unmount_all(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        for mount_point in sorted(self.mounts(), key=len, reverse=True):
            if libc.umount2(mount_point.encode(), 0) != 0:
                if libc.umount2(mount_point.encode(), _MNT_DETACH) != 0:
                    err = ctypes.get_errno()
                    if err != errno.EINVAL:  # EINVAL: already gone
                        raise SandboxError(f"cannot unmount {mount_point}: {os.strerror(err)}")

    def _remove_host_dirs(self) -> None:
        try:
            created = self._created_file.read_text().split()
        except OSError:
            return
        kept = []
        for path in reversed(created):
            try:
                Path(path).rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                kept.append(path)  # not empty: another containerd uses it
        if kept:
            self._created_file.write_text("".join(f"{p}\n" for p in reversed(kept)))
        else:
            self._created_file.unlink()

    # ---- demo ----

    def run_demo(self, name: str = "demo", namespace: str = "default", wait: bool = True) -> RunningContainer:
        """Start a pod running the demo image through CRI; with ``wait``, until it read its files."""
        started = self.cri.run(name, images.DEMO_IMAGE, namespace=namespace)
        if wait:
            self.wait_for_log(started.container_id, images.DEMO_READY_LINE)
        return started

    def wait_for_log(self, container_id: str, text: str, timeout: float = 30.0) -> str:
        """Wait until the container's CRI log contains ``text``; returns the log."""
        log_path = Path(self.cri.container_status(container_id).log_path)
        deadline = time.monotonic() + timeout
        while True:
            log = _read(log_path)
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in {log_path} after {timeout:.0f}s: {log[-500:]!r}")
            time.sleep(0.02)


def _read(path: Path, offset: int = 0) -> str:
    """The text of ``path`` from byte ``offset`` on; empty if it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(path: Path) -> str:
    lines = [line for line in _read(path).splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"


def _bootstrap_address(path: Path) -> str:
    """The shim address in a containerd 2.x ``bootstrap.json``; empty if there is none."""
    try:
        address = json.loads(_read(path) or "{}").get("address", "")
    except (ValueError, AttributeError):
        return ""
    return address if isinstance(address, str) else ""


def _walk_dirs(top: Path) -> list[Path]:
    return [Path(root) for root, _, _ in os.walk(top)]


def _rmtree(path: Path) -> None:
    if path.is_dir():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def running_nodes() -> dict[Path, int]:
    """Directories of every sandbox node running on this machine, with their containerd pids."""
    nodes = {}
    for pid in _pids():
        argv = _cmdline(pid)
        if len(argv) == 3 and argv[0].endswith("/containerd") and argv[1] == "--config":
            config = Path(argv[2])
            if config.name == "config.toml" and SandboxNode(config.parent)._is_our_containerd(pid):
                nodes[config.parent] = pid
    return nodes


# ---- command line ----

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sandbox-node", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A private containerd node (1.7 or 2.1) with NRI for nydus-top (needs root).",
        epilog="commands:\n"
               "  up      start containerd (idempotent), import the pause and demo images; --lazy: with the stargz\n"
               "          snapshotter and a registry behind a slow link (--link 100mbit,20ms), fresh state\n"
               "  down    remove all pods, stop containerd, unmount, remove cgroups and sockets\n"
               "  status  say whether the node runs (exit status 3 when not)\n"
               "  env     print export KEY=value lines (NYDUS_TOP_NRI_SOCKET, CONTAINERD_SOCKET, ...) for eval\n"
               "  demo    start the demo workload pod unless one runs (--restart: replace it); it reads\n"
               "          its start-up files, then two of them again every few seconds\n"
               "  list    list every sandbox node running on this machine")
    parser.add_argument("command", choices=["up", "down", "status", "env", "demo", "list"])
    parser.add_argument("--containerd", choices=sorted(CONTAINERD_SUITES),
                        default=os.environ.get("SANDBOX_CONTAINERD") or None,
                        help=f"up: the containerd version (default $SANDBOX_CONTAINERD, else the one the node "
                             f"last ran, else {DEFAULT_CONTAINERD}); 1.7 comes from Debian trixie, 2.1 from forky")
    parser.add_argument("--lazy", action="store_true",
                        help="up: with the stargz snapshotter (CRI's snapshotter, a fresh image store) and a registry "
                             "behind a slow link in a network namespace of its own (see --link)")
    parser.add_argument("--link", default=None,
                        help=f"up --lazy: the slow link's RATE,ONE-WAY-DELAY (default {DEFAULT_LINK})")
    parser.add_argument("--purge", action="store_true", help="down: also remove the directory (images, log)")
    parser.add_argument("--restart", action="store_true", help="demo: remove the demo pod and start a new one")
    parser.add_argument("--dir", default=os.environ.get("SANDBOX_DIR") or str(DEFAULT_DIR),
                        help=f"directory holding all of the node's state (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.containerd is not None and args.containerd not in CONTAINERD_SUITES:  # from the environment
        parser.error(f"SANDBOX_CONTAINERD={args.containerd!r}: choose {' or '.join(CONTAINERD_SUITES)}")
    if args.link is not None and not args.lazy:
        parser.error("--link needs --lazy")
    try:
        node = SandboxNode(args.dir, args.containerd, lazy=args.lazy, link=args.link)
    except LinkError as exc:
        parser.error(str(exc))
    if args.command in ("up", "down", "demo") and os.geteuid() != 0:
        print(f"sandbox-node {args.command}: needs root (it runs containerd and runc)", file=sys.stderr)
        return 1
    try:
        if args.command == "up":
            started = node.up()
            print(f"sandbox-node: containerd {node.containerd} {'started' if started else 'already running'} "
                  f"(pid {node.pid()}), NRI socket {node.nri_socket}", file=sys.stderr)
            if node.lazy:
                print(f"sandbox-node: stargz snapshotter (pid {node.stargz_pid()}), registry {node.registry} "
                      f"behind {node.slow_link.state().get('link')}", file=sys.stderr)
        elif args.command == "down":
            stopped = node.down(purge=args.purge)
            print(f"sandbox-node: {'stopped' if stopped else 'was not running'}; {node.dir} cleaned",
                  file=sys.stderr)
        elif args.command == "status":
            pid = node.pid()
            print(f"running (pid {pid})" if pid else "not running")
            return 0 if pid else 3
        elif args.command == "env":
            for key, value in node.env().items():
                print(f"export {key}={shlex.quote(value)}")  # exported: nydus-top reads NYDUS_TOP_NRI_SOCKET
        elif args.command == "demo":
            return _demo(node, restart=args.restart)
        elif args.command == "list":
            for directory, pid in sorted(running_nodes().items()):
                print(f"{pid}\t{directory}")
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator, not a traceback
        print(f"sandbox-node {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(node: SandboxNode, restart: bool = False) -> int:
    """Start the demo pod unless one named ``demo`` runs already; ``restart`` replaces it. Demo
    pods whose container is gone or stopped are removed first, so none is left behind empty."""
    if node.pid() is None:
        raise SandboxError("not running; run `sandbox-node up` first")
    running = [c for c in node.cri.containers() if c.name == "demo" and c.state == "RUNNING"]
    if running and not restart:
        print(f"sandbox-node: demo already running (container {running[0].id[:12]}; --restart replaces it)",
              file=sys.stderr)
        return 0
    for pod in node.cri.pods():
        if pod.name == "demo" and pod.namespace == "default":
            node.cri.remove_pod(pod.id)
            print(f"sandbox-node: removed demo pod {pod.id[:12]}", file=sys.stderr)
    started = node.run_demo()
    print(f"sandbox-node: demo started (pod {started.pod_id[:12]}, container {started.container_id[:12]})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
