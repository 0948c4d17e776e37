"""A small CRI (Kubernetes Container Runtime Interface) client over gRPC, for tests and the sandbox.

The Python modules are generated with grpcio-tools on first use from Debian trixie's
``golang-github-kubernetes-cri-api-dev`` (its gogoproto annotations removed) into the repository's
gitignored ``.cache/cri/``. Pods always use the host network (the sandbox has no CNI) and the
cgroup parent given to the client, so each sandbox node keeps its pods in its own cgroup.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sandbox.aptfetch import AptCache, cache_lock

_PROTO = "usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"
_MODULE = "cri_runtime_v1"
_GEN_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "cri"

# ContainerState and NamespaceMode values of the CRI definition.
STATE_NAMES = {0: "CREATED", 1: "RUNNING", 2: "EXITED", 3: "UNKNOWN"}
NAMESPACE_NODE = 2

# containerd's answers while it cleans up after a shim that died under a running container: the
# kill of a stop ("ttrpc: closed"), then a remove of the container it still thinks runs.
SHIM_GONE = ("ttrpc: closed", "container is still running, to stop first")
SETTLE_WINDOW, SETTLE_POLL = 30.0, 0.1


def shim_gone(error: BaseException) -> bool:
    """Whether a CRI call failed only because the container's shim is gone and containerd is settling it."""
    details = getattr(error, "details", None)
    text = details() if callable(details) else ""
    return isinstance(text, str) and any(part in text for part in SHIM_GONE)


def strip_gogoproto(text: str) -> str:
    """The CRI ``api.proto`` without gogoproto's import, file options and field options."""
    text = re.sub(r'^import "github.com/gogo/protobuf/gogoproto/gogo.proto";\n', "", text, flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[^;]*;\n", "", text, flags=re.M)
    return re.sub(r"\s*\[\(gogoproto\.[^]]*\]", "", text)


def _generate(dest: Path) -> None:
    from grpc_tools import protoc  # test-only dependency, imported only when generating

    proto = AptCache().unpacked("golang-github-kubernetes-cri-api-dev", "trixie") / _PROTO
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".gen-") as tmp:
        src = Path(tmp) / f"{_MODULE}.proto"
        src.write_text(strip_gogoproto(proto.read_text()))
        include = Path(protoc.__file__).parent / "_proto"
        status = protoc.main(["protoc", f"-I{tmp}", f"-I{include}", f"--python_out={tmp}",
                              f"--grpc_python_out={tmp}", str(src)])
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} (status {status})")
        src.unlink()
        Path(tmp).rename(dest)


def load_modules() -> tuple[ModuleType, ModuleType]:
    """The generated ``(pb2, pb2_grpc)`` modules of the CRI v1 API, generating them if needed."""
    from importlib.metadata import version  # the generated code depends on these versions

    key = f"{version('grpcio-tools')} {version('protobuf')} {sys.prefix} {_PROTO}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    dest = _GEN_ROOT / tag
    if not dest.is_dir():
        _GEN_ROOT.mkdir(parents=True, exist_ok=True)
        with cache_lock(_GEN_ROOT):
            if not dest.is_dir():
                _generate(dest)
                for stale in _GEN_ROOT.iterdir():  # generated for other versions
                    if stale.is_dir() and stale != dest and not stale.name.startswith("."):
                        shutil.rmtree(stale, ignore_errors=True)
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    return importlib.import_module(f"{_MODULE}_pb2"), importlib.import_module(f"{_MODULE}_pb2_grpc")


@dataclass(frozen=True)
class PodInfo:
    id: str
    name: str
    namespace: str
    uid: str
    ready: bool


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    pod_id: str
    name: str
    image: str
    state: str


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    name: str
    state: str
    pid: int
    exit_code: int
    log_path: str


@dataclass(frozen=True)
class RunningContainer:
    pod_id: str
    container_id: str


class CriClient:
    """Runs, lists, stops and removes host-network pods and their containers through CRI."""

    def __init__(self, socket: str | Path, *, cgroup_parent: str = "", log_dir: str | Path | None = None,
                 timeout: float = 30.0) -> None:
        import grpc  # test-only dependency

        self.pb, grpc_mod = load_modules()
        self.socket = str(socket)
        self.cgroup_parent = cgroup_parent
        self.log_dir = Path(log_dir) if log_dir else None
        self.timeout = timeout
        self._channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.runtime = grpc_mod.RuntimeServiceStub(self._channel)
        self.images = grpc_mod.ImageServiceStub(self._channel)
        self._pod_configs: dict[str, Any] = {}

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self, timeout: float | None = None) -> str:
        """The runtime's name and version, e.g. ``containerd v1.7.24``."""
        reply = self.runtime.Version(self.pb.VersionRequest(), timeout=timeout or self.timeout)
        return f"{reply.runtime_name} {reply.runtime_version}"

    def run_pod(self, name: str, *, namespace: str = "default", uid: str | None = None,
                labels: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None) -> str:
        """Start a host-network pod sandbox; returns its id."""
        pb = self.pb
        uid = uid or uuid.uuid4().hex
        log_directory = str(self.log_dir / f"{namespace}_{name}_{uid}") if self.log_dir else ""
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid),
            log_directory=log_directory,
            labels=dict(labels or {}),
            annotations=dict(annotations or {}),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=NAMESPACE_NODE)),
            ),
        )
        return self.run_pod_sandbox(config)

    def run_pod_sandbox(self, config: Any) -> str:
        """Start a pod sandbox from a complete ``PodSandboxConfig`` (e.g. from ``sandbox.podspec``); its id."""
        reply = self.runtime.RunPodSandbox(self.pb.RunPodSandboxRequest(config=config), timeout=self.timeout)
        self._pod_configs[reply.pod_sandbox_id] = config
        return reply.pod_sandbox_id

    def create_container(self, pod_id: str, name: str, image: str, *, command: Sequence[str] = (),
                         args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                         working_dir: str = "", labels: Mapping[str, str] | None = None,
                         annotations: Mapping[str, str] | None = None) -> str:
        """Create (not start) a container in a pod this client started; returns its id."""
        pb = self.pb
        sandbox_config = self._pod_configs.get(pod_id)
        if sandbox_config is None:
            raise KeyError(f"pod {pod_id} was not started by this client")
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=image),
            command=list(command), args=list(args), working_dir=working_dir,
            envs=[pb.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
            labels=dict(labels or {}), annotations=dict(annotations or {}),
            log_path=f"{name}.log" if sandbox_config.log_directory else "",
        )
        return self.create_container_from(pod_id, config)

    def create_container_from(self, pod_id: str, config: Any) -> str:
        """Create (not start) a container from a complete ``ContainerConfig`` in a pod this client started."""
        sandbox_config = self._pod_configs.get(pod_id)
        if sandbox_config is None:
            raise KeyError(f"pod {pod_id} was not started by this client")
        reply = self.runtime.CreateContainer(
            self.pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config),
            timeout=self.timeout)
        return reply.container_id

    def start_container(self, container_id: str) -> None:
        self.runtime.StartContainer(self.pb.StartContainerRequest(container_id=container_id),
                                    timeout=self.timeout)

    def run(self, name: str, image: str, command: Sequence[str] = (), args: Sequence[str] = (), *,
            namespace: str = "default", env: Mapping[str, str] | None = None,
            pod_annotations: Mapping[str, str] | None = None) -> RunningContainer:
        """Start a pod named ``name`` with one started container ``name`` from ``image``."""
        pod_id = self.run_pod(name, namespace=namespace, annotations=pod_annotations)
        container_id = self.create_container(pod_id, name, image, command=command, args=args, env=env)
        self.start_container(container_id)
        return RunningContainer(pod_id, container_id)

    def pods(self) -> list[PodInfo]:
        reply = self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=self.timeout)
        return [PodInfo(p.id, p.metadata.name, p.metadata.namespace, p.metadata.uid, p.state == 0)
                for p in reply.items]

    def containers(self, pod_id: str | None = None) -> list[ContainerInfo]:
        pb = self.pb
        request = pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod_id or ""))
        reply = self.runtime.ListContainers(request, timeout=self.timeout)
        return [ContainerInfo(c.id, c.pod_sandbox_id, c.metadata.name, c.image.image,
                              STATE_NAMES.get(c.state, "UNKNOWN")) for c in reply.containers]

    def container_status(self, container_id: str) -> ContainerStatus:
        """State, host pid (0 when not running) and exit code of a container."""
        reply = self.runtime.ContainerStatus(
            self.pb.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=self.timeout)
        status = reply.status
        pid = int(json.loads(reply.info.get("info", "{}")).get("pid", 0))
        return ContainerStatus(status.id, status.metadata.name, STATE_NAMES.get(status.state, "UNKNOWN"),
                               pid, status.exit_code, status.log_path)

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self.runtime.StopContainer(self.pb.StopContainerRequest(container_id=container_id, timeout=timeout),
                                   timeout=self.timeout + timeout)

    def remove_container(self, container_id: str) -> None:
        self.runtime.RemoveContainer(self.pb.RemoveContainerRequest(container_id=container_id),
                                     timeout=self.timeout)

    def stop_pod(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=self.timeout)

    def remove_pod(self, pod_id: str) -> None:
        """Stop and remove a pod with all its containers. A container whose shim died is one containerd
        settles by itself (measured 1.6-1.8 s): its errors are retried for up to ``SETTLE_WINDOW``."""
        deadline = time.monotonic() + SETTLE_WINDOW
        while True:
            try:
                self.stop_pod(pod_id)
                self.runtime.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                                              timeout=self.timeout)
                break
            except Exception as error:
                if not shim_gone(error) or time.monotonic() > deadline:
                    raise
                time.sleep(SETTLE_POLL)  # CRI has no event for containerd's dead-shim clean-up
        self._pod_configs.pop(pod_id, None)

    def remove_all(self) -> int:
        """Remove every pod of the runtime; returns how many were removed."""
        pods = self.pods()
        for pod in pods:
            self.remove_pod(pod.id)
        return len(pods)
