"""The DaemonSet's recorder pod run on a sandbox node through CRI, as kubelet would run it.

Shared by the deploy tests and ``bench/recorder_pod.py``. The pod spec comes from
``deploy/daemonset.yaml`` (optionally edited by the caller) through ``sandbox.podspec``; its
hostPath volumes map to the node's NRI socket directory and a results directory of the
caller's, the ConfigMap comes from ``deploy/configmap.yaml``.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nydus_top.imageref import parse_image_ref
from sandbox import images, podspec, recorder_image
from sandbox.node import SandboxNode

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
READY_LINE = "recording container starts via"  # the recorder's line once containerd synchronized it


def manifest(name: str) -> dict[str, Any]:
    return next(doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc)


def daemonset() -> dict[str, Any]:
    return manifest("daemonset.yaml")


def recorder_container(doc: Mapping[str, Any]) -> dict[str, Any]:
    return podspec.pod_template(doc)["containers"][0]


def volume_host_path(doc: Mapping[str, Any], name: str) -> str:
    return next(v["hostPath"]["path"] for v in podspec.pod_template(doc)["volumes"] if v["name"] == name)


def mount_path(doc: Mapping[str, Any], name: str) -> str:
    return next(m["mountPath"] for m in recorder_container(doc)["volumeMounts"] if m["name"] == name)


def import_recorder_image(node: SandboxNode, image: str) -> str:
    """Import this checkout's image (built once per source digest) into *node* under the name *image* uses."""
    normalized = str(parse_image_ref(image))  # what containerd's CRI looks the name up as
    images.import_image(node, recorder_image.cached_archive(normalized))
    return normalized


@dataclass
class RecorderPod:
    node: SandboxNode
    pod_id: str
    container_id: str
    persist: Path  # the host directory of the results hostPath
    log_path: Path
    doc: dict[str, Any]  # the DaemonSet as run (its metrics port moved to a free one)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, *texts: str, timeout: float = 60.0) -> str:
        """The first of *texts* to appear in the pod's log, or "exited" if the recorder exits first."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            for text in texts:
                if text in log:
                    return text
            if self.node.cri.container_status(self.container_id).state == "EXITED":
                log = self.log()  # lines written just before exiting
                return next((t for t in texts if t in log), "exited")
            if time.monotonic() > deadline:
                raise TimeoutError(f"none of {texts} in {self.log_path} after {timeout:.0f}s: {log[-800:]!r}")
            time.sleep(0.05)


@contextlib.contextmanager
def run_recorder_pod(node: SandboxNode, work: Path, doc: Mapping[str, Any] | None = None,
                     edit: Callable[[dict[str, Any]], None] | None = None,
                     config: str | None = None,
                     secrets: Mapping[str, Mapping[str, str]] | None = None) -> Iterator[RecorderPod]:
    """Run the DaemonSet's pod (after *edit* of a copy of it, with the ConfigMap's config.toml
    replaced by *config* if given, and the Secrets *secrets*: name -> data) on *node*; removed at
    the end."""
    doc = copy.deepcopy(dict(doc or daemonset()))
    if edit is not None:
        edit(doc)
    spec = podspec.pod_template(doc)
    configmap = manifest("configmap.yaml")
    if config is not None:
        configmap["data"]["config.toml"] = config
    # The pod shares the host's network here: its metrics port becomes a free one, so test pods
    # (and other users of the machine) never collide on the manifest's.
    configmap["data"]["config.toml"] = _free_metrics_port(doc, configmap["data"]["config.toml"])
    persist = work / "results"
    host_paths = {volume_host_path(doc, "nri"): node.nri_socket.parent,
                  volume_host_path(doc, "results"): persist}
    name, namespace, uid = "nydus-top-recorder-test", doc["metadata"]["namespace"], uuid.uuid4().hex
    log_dir = node.pod_logs / f"{namespace}_{name}_{uid}"
    with podspec.volumes(work / "volumes", host_paths, {configmap["metadata"]["name"]: configmap["data"]},
                         secrets) as made:
        cri = node.cri
        translated = podspec.translate(cri.pb, spec, made, name=name, namespace=namespace, uid=uid,
                                       cgroup_parent=node.cgroup_parent, log_directory=str(log_dir))
        pod_id = cri.run_pod_sandbox(translated.sandbox)
        try:
            container_id = cri.create_container_from(pod_id, translated.containers[0])
            cri.start_container(container_id)
            yield RecorderPod(node, pod_id, container_id, persist,
                              log_dir / translated.containers[0].log_path, doc)
        finally:
            cri.remove_pod(pod_id)


def _free_metrics_port(doc: dict[str, Any], config: str) -> str:
    """*config* with its ``[metrics] address`` port (if any) replaced by a free one, and *doc*'s
    container port of that number moved with it."""
    found = re.search(r'^address = "([^"]*):(\d+)"$', config, re.MULTILINE)
    if found is None:
        return config
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    for port in recorder_container(doc).get("ports", []):
        if port["containerPort"] == int(found[2]):
            port["containerPort"] = free
    return config[:found.start()] + f'address = "{found[1]}:{free}"' + config[found.end():]


def probe(doc: Mapping[str, Any], which: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """What kubelet's *which* probe (``livenessProbe``, ``readinessProbe``) of the recorder gets:
    its httpGet, the named port resolved through the container's ports, on *host* (the pod uses
    the host network here), within the probe's timeoutSeconds. (status, body); 0 when no answer."""
    container = recorder_container(doc)
    spec = container[which]
    get = spec["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    conn = http.client.HTTPConnection(host, port, timeout=spec.get("timeoutSeconds", 1))
    try:
        conn.request("GET", get["path"])
        answer = conn.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    except OSError:
        return 0, ""
    finally:
        conn.close()
