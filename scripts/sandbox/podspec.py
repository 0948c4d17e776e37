"""Kubernetes pod specs translated to CRI requests, the way kubelet 1.33 translates them.

``translate`` turns the pod template of a manifest (a DaemonSet's ``spec.template``) into the
``PodSandboxConfig`` and ``ContainerConfig`` messages kubelet would send to containerd: host
namespaces, security context (capabilities, read-only root, seccomp, user, ``no_new_privs``,
kubelet's masked and read-only ``/proc`` paths), resources (CPU shares and quota, memory limit,
the Burstable OOM score) and mounts. Volumes get host directories from :class:`Volumes`:
hostPath volumes at paths the caller maps (the sandbox node's own directories), ConfigMaps
and Secrets written out as files (an optional Secret that is not there: an empty directory),
memory emptyDirs as tmpfs mounts of their size limit.

A field of the spec that this module does not know is an error, not silently left out: a
manifest change must be taught here before the tests can claim to run "the same pod". What
differs from a real cluster, by necessity: the pod uses the host network (the sandbox node has
no CNI; the recorder uses no network), its cgroup parent is the sandbox node's, and kubelet's own
extra mounts (``/etc/hosts``, ``/etc/resolv.conf``, ``/dev/termination-log``, the service account
token, which the manifest turns off anyway) are not made.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

NAMESPACE_POD, NAMESPACE_NODE = 0, 2  # CRI NamespaceMode
PROFILE_RUNTIME_DEFAULT, PROFILE_UNCONFINED, PROFILE_LOCALHOST = 0, 1, 2  # CRI SecurityProfile.ProfileType
CPU_PERIOD = 100_000  # kubelet's CFS quota period, microseconds
MIN_SHARES = 2
GUARANTEED_OOM_SCORE_ADJ, BEST_EFFORT_OOM_SCORE_ADJ = -997, 1000
# kubelet's defaults for containers that are not privileged (procMount: Default).
DEFAULT_MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                        "/sys/firmware", "/sys/devices/virtual/powercap")
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Pod spec fields that change nothing kubelet sends to the runtime on one node, and why.
_POD_IGNORED = {
    "nodeSelector": "scheduling: picks the node, not how the pod runs on it",
    "terminationGracePeriodSeconds": "kubelet's StopContainer timeout",
    "automountServiceAccountToken": "false: no token volume (kubelet adds none)",
    "enableServiceLinks": "false: no service environment variables",
}
_POD_HANDLED = {"hostPID", "containers", "volumes"}
_CONTAINER_HANDLED = {"name", "image", "imagePullPolicy", "command", "args", "securityContext", "resources",
                      "volumeMounts", "env", "ports"}
# Container fields kubelet acts on itself, never sent to the runtime (the tests act them out: see
# testkit.recorder_pod.probe).
_CONTAINER_KUBELET = {"livenessProbe": "kubelet probes the container itself",
                      "readinessProbe": "kubelet probes the container itself"}
_SECURITY_HANDLED = {"privileged", "runAsUser", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                     "seccompProfile", "capabilities"}


class PodSpecError(ValueError):
    """The spec has something this translator does not know how kubelet handles."""


@dataclass(frozen=True)
class Translated:
    """The CRI messages for one pod: its sandbox config and one container config per container."""

    sandbox: Any  # PodSandboxConfig
    containers: list[Any] = field(default_factory=list)  # ContainerConfig


def pod_template(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a DaemonSet, Deployment or similar document."""
    try:
        return manifest["spec"]["template"]["spec"]
    except (KeyError, TypeError):
        raise PodSpecError(f"{manifest.get('kind', 'document')} has no spec.template.spec") from None


def _unknown(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise PodSpecError(f"{where}: {extra[0]!r} is not translated (teach scripts/sandbox/podspec.py)")


# ------------------------------------------------------------------ quantities

_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9,
             "T": 10**12}


def memory_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (``64Mi``, ``1G``, ``1000``) in bytes."""
    text = str(quantity)
    for suffix, factor in _SUFFIXES.items():
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * factor
    if text.isdigit():
        return int(text)
    raise PodSpecError(f"memory quantity {text!r} not understood")


def milli_cpu(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity (``50m``, ``0.5``, ``2``) in millicores."""
    text = str(quantity)
    if text.endswith("m") and text[:-1].isdigit():
        return int(text[:-1])
    try:
        return round(float(text) * 1000)
    except ValueError:
        raise PodSpecError(f"cpu quantity {text!r} not understood") from None


def cpu_shares(milli: int) -> int:
    return max(MIN_SHARES, milli * 1024 // 1000) if milli else MIN_SHARES


def oom_score_adj(requests: Mapping[str, Any], limits: Mapping[str, Any], node_memory: int) -> int:
    """kubelet's OOM score adjustment of a single-container pod's container, by its QoS class."""
    if not requests and not limits:
        return BEST_EFFORT_OOM_SCORE_ADJ
    if limits and all(k in limits for k in ("cpu", "memory")) and all(
            str(requests.get(k, limits[k])) == str(limits[k]) for k in ("cpu", "memory")):
        return GUARANTEED_OOM_SCORE_ADJ
    request = memory_bytes(requests.get("memory", limits.get("memory", 0)))
    score = 1000 - (1000 * request) // node_memory
    if score < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    return score - 1 if score == BEST_EFFORT_OOM_SCORE_ADJ else score


def node_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemTotal")


# ------------------------------------------------------------------ volumes

class Volumes:
    """Host directories for a pod's volumes, made like kubelet makes them; undone by :meth:`close`.

    ``host_paths`` maps a hostPath volume's path in the manifest to the directory used here;
    ``configmaps`` maps a ConfigMap's name to its ``data``.
    """

    def __init__(self, root: Path, host_paths: Mapping[str, Path], configmaps: Mapping[str, Mapping[str, str]],
                 secrets: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.root = root
        self.host_paths = dict(host_paths)
        self.configmaps = dict(configmaps)
        self.secrets = dict(secrets or {})  # Secret name -> its data (decoded)
        self._mounted: list[Path] = []

    def host_dir(self, volume: Mapping[str, Any]) -> tuple[Path, bool]:
        """(host path, forced read-only) of one volume of the spec."""
        name = volume["name"]
        kinds = sorted(set(volume) - {"name"})
        if kinds == ["hostPath"]:
            source = volume["hostPath"]
            _unknown(f"volume {name} hostPath", source, {"path", "type"})
            if source["path"] not in self.host_paths:
                raise PodSpecError(f"volume {name}: no host directory given for hostPath {source['path']}")
            path = self.host_paths[source["path"]]
            kind = source.get("type", "")
            if kind == "DirectoryOrCreate":
                path.mkdir(mode=0o755, parents=True, exist_ok=True)
            elif kind == "Directory" and not path.is_dir():
                raise PodSpecError(f"volume {name}: hostPath {path} is not a directory (type Directory)")
            elif kind not in ("", "Directory", "DirectoryOrCreate"):
                raise PodSpecError(f"volume {name}: hostPath type {kind!r} is not translated")
            return path, False
        if kinds == ["configMap"]:
            source = volume["configMap"]
            _unknown(f"volume {name} configMap", source, {"name"})
            data = self.configmaps.get(source["name"])
            if data is None:
                raise PodSpecError(f"volume {name}: no ConfigMap {source['name']!r} given")
            directory = self.root / f"configmap-{name}"
            directory.mkdir(parents=True)
            for key, text in data.items():
                (directory / key).write_text(text)
                (directory / key).chmod(0o644)  # kubelet's defaultMode
            return directory, True  # kubelet mounts ConfigMaps read-only whatever the mount says
        if kinds == ["secret"]:
            return self._secret(name, volume["secret"]), True
        if kinds == ["emptyDir"]:
            source = volume["emptyDir"]
            _unknown(f"volume {name} emptyDir", source, {"medium", "sizeLimit"})
            directory = self.root / f"emptydir-{name}"
            directory.mkdir(parents=True, mode=0o777)
            if source.get("medium") == "Memory":
                size = memory_bytes(source["sizeLimit"]) if "sizeLimit" in source else 0
                options = f"mode=0777,size={size}" if size else "mode=0777"
                subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], check=True)
                self._mounted.append(directory)
            elif source.get("medium", "") != "":
                raise PodSpecError(f"volume {name}: emptyDir medium {source['medium']!r} is not translated")
            return directory, False
        raise PodSpecError(f"volume {name}: kind {kinds} is not translated")

    def _secret(self, name: str, source: Mapping[str, Any]) -> Path:
        """A Secret volume as kubelet makes it: the keys (or *items*) as files, mode 0644 unless
        defaultMode says; an optional Secret that does not exist gives an empty directory."""
        _unknown(f"volume {name} secret", source, {"secretName", "optional", "items", "defaultMode"})
        data = self.secrets.get(source["secretName"])
        if data is None and not source.get("optional", False):
            raise PodSpecError(f"volume {name}: no Secret {source['secretName']!r} given (and not optional)")
        directory = self.root / f"secret-{name}"
        directory.mkdir(parents=True)
        items = source.get("items") or [{"key": key, "path": key} for key in data or {}]
        for item in items:
            _unknown(f"volume {name} secret item", item, {"key", "path"})
            if data is not None and item["key"] in data:
                (directory / item["path"]).write_text(data[item["key"]])
                (directory / item["path"]).chmod(source.get("defaultMode", 0o644))
        return directory

    def close(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        while self._mounted:
            path = self._mounted.pop()
            if libc.umount2(os.fsencode(path), 0) != 0:
                libc.umount2(os.fsencode(path), 2)  # MNT_DETACH: busy until the pod is gone


@contextmanager
def volumes(root: Path, host_paths: Mapping[str, Path], configmaps: Mapping[str, Mapping[str, str]],
            secrets: Mapping[str, Mapping[str, str]] | None = None) -> Iterator[Volumes]:
    made = Volumes(root, host_paths, configmaps, secrets)
    try:
        yield made
    finally:
        made.close()


# ------------------------------------------------------------------ translation


def _security_context(pb: ModuleType, sc: Mapping[str, Any], host_pid: bool) -> Any:
    _unknown("container securityContext", sc, _SECURITY_HANDLED)
    privileged = bool(sc.get("privileged", False))
    caps = sc.get("capabilities", {})
    _unknown("capabilities", caps, {"add", "drop"})
    seccomp = sc.get("seccompProfile", {})
    profile = {"RuntimeDefault": PROFILE_RUNTIME_DEFAULT, "Unconfined": PROFILE_UNCONFINED,
               "Localhost": PROFILE_LOCALHOST}
    if seccomp and seccomp.get("type") not in profile:
        raise PodSpecError(f"seccompProfile type {seccomp.get('type')!r} is not translated")
    context = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(add_capabilities=list(caps.get("add", [])),
                                   drop_capabilities=list(caps.get("drop", []))),
        privileged=privileged,
        namespace_options=pb.NamespaceOption(network=NAMESPACE_NODE, pid=NAMESPACE_NODE if host_pid else NAMESPACE_POD,
                                             ipc=NAMESPACE_POD),
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem", False)),
        # kubelet: no_new_privs unless privilege escalation is allowed (unset counts as allowed).
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        seccomp=pb.SecurityProfile(profile_type=profile[seccomp.get("type", "Unconfined")],
                                   localhost_ref=seccomp.get("localhostProfile", "")),
        masked_paths=[] if privileged else list(DEFAULT_MASKED_PATHS),
        readonly_paths=[] if privileged else list(DEFAULT_READONLY_PATHS),
    )
    if "runAsUser" in sc:
        context.run_as_user.value = int(sc["runAsUser"])
    return context


def _resources(pb: ModuleType, resources: Mapping[str, Any], node_memory: int) -> Any:
    _unknown("resources", resources, {"requests", "limits"})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    for kind in (*requests, *limits):
        if kind not in ("cpu", "memory"):
            raise PodSpecError(f"resource {kind!r} is not translated")
    result = pb.LinuxContainerResources(
        cpu_shares=cpu_shares(milli_cpu(requests.get("cpu", limits.get("cpu", 0)))),
        oom_score_adj=oom_score_adj(requests, limits, node_memory),
    )
    if "cpu" in limits:
        result.cpu_period = CPU_PERIOD
        result.cpu_quota = max(1000, milli_cpu(limits["cpu"]) * CPU_PERIOD // 1000)
    if "memory" in limits:
        result.memory_limit_in_bytes = memory_bytes(limits["memory"])
    return result


def translate(pb: ModuleType, spec: Mapping[str, Any], made: Volumes, *, name: str, namespace: str, uid: str,
              cgroup_parent: str, log_directory: str = "", node_memory: int | None = None) -> Translated:
    """The CRI configs kubelet would send for pod *spec* (see the module's docstring)."""
    _unknown("pod spec", spec, _POD_HANDLED | set(_POD_IGNORED))
    host_pid = bool(spec.get("hostPID", False))
    node_memory = node_memory or node_memory_bytes()
    sandbox = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0),
        # No hostname: with the host network (see above) the pod has the node's, as kubelet does.
        log_directory=log_directory,
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=NAMESPACE_NODE,
                                                     pid=NAMESPACE_NODE if host_pid else NAMESPACE_POD),
                # No pod-level seccompProfile: kubelet runs the sandbox unconfined.
                seccomp=pb.SecurityProfile(profile_type=PROFILE_UNCONFINED),
            ),
        ),
    )
    host_dirs = {v["name"]: made.host_dir(v) for v in spec.get("volumes", [])}
    containers = []
    for container in spec["containers"]:
        _unknown(f"container {container.get('name')}", container, _CONTAINER_HANDLED | set(_CONTAINER_KUBELET))
        for port in container.get("ports", []):  # the host network (see above): nothing to map
            _unknown("container port", port, {"name", "containerPort", "protocol"})
        envs = []
        for env in container.get("env", []):
            _unknown("env", env, {"name", "value"})
            envs.append(pb.KeyValue(key=env["name"], value=str(env.get("value", ""))))
        mounts = []
        for mount in container.get("volumeMounts", []):
            _unknown("volumeMount", mount, {"name", "mountPath", "readOnly"})
            host, forced_ro = host_dirs[mount["name"]]
            mounts.append(pb.Mount(container_path=mount["mountPath"], host_path=str(host),
                                   readonly=forced_ro or bool(mount.get("readOnly", False))))
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=container["name"], attempt=0),
            image=pb.ImageSpec(image=container["image"]),
            command=list(container.get("command", [])),
            args=list(container.get("args", [])),
            envs=envs,
            mounts=mounts,
            labels={"io.kubernetes.container.name": container["name"], "io.kubernetes.pod.name": name,
                    "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid},
            log_path=f"{container['name']}/0.log" if log_directory else "",
            linux=pb.LinuxContainerConfig(
                resources=_resources(pb, container.get("resources", {}), node_memory),
                security_context=_security_context(pb, container.get("securityContext", {}), host_pid),
            ),
        )
        containers.append(config)
    return Translated(sandbox, containers)
