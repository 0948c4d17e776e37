"""The DaemonSet's pod, proven on the sandbox node: the spec of deploy/daemonset.yaml, translated to
CRI as kubelet would (``sandbox.podspec``), runs the recorder image and records the demo's start-up;
taking away any one of its added capabilities breaks recording (least privilege).

What is not proven here: scheduling, the pod network (the sandbox node has no CNI, so the pod
uses the host's; the recorder talks only to a unix socket), kubelet's own mounts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nydus_top.lists.files import result_paths
from nydus_top.registry import artifacts as registry
from sandbox import images, podspec
from sandbox import registry as local_registry
from sandbox.node import SandboxNode
from sandbox.registry import LocalRegistry
from testkit.recorder_pod import (
    READY_LINE,
    daemonset,
    import_recorder_image,
    manifest,
    mount_path,
    probe,
    recorder_container,
    run_recorder_pod,
)

PERSIST_IN_POD = "/opt/nri/optimizer/results"


@pytest.fixture(scope="session")
def recorder_image(sandbox_node: SandboxNode) -> str:
    """This checkout's image on the sandbox node under the name the manifest gives."""
    return import_recorder_image(sandbox_node, recorder_container(daemonset())["image"])


def _record_demo(node: SandboxNode, pod) -> tuple[str, list[str]]:
    """Start and stop the demo with the recorder pod running: (the recorder's outcome line, the list saved)."""
    ready = pod.wait_for(READY_LINE)
    if ready != READY_LINE:
        return ready, []
    demo = node.run_demo()
    node.cri.remove_pod(demo.pod_id)
    saved_in_pod = result_paths(PERSIST_IN_POD, images.DEMO_IMAGE).list
    outcome = pod.wait_for(f"saved {saved_in_pod} ", "cannot record", "NOT SAVED")
    listing = result_paths(pod.persist, images.DEMO_IMAGE).list
    return outcome, listing.read_text().splitlines() if listing.exists() else []


def test_the_manifest_paths_are_the_ones_the_test_maps() -> None:
    doc = daemonset()
    config = manifest("configmap.yaml")["data"]["config.toml"]
    assert mount_path(doc, "results") == PERSIST_IN_POD and f'persist_dir = "{PERSIST_IN_POD}"' in config
    assert mount_path(doc, "nri") == "/var/run/nri" and 'socket = "/var/run/nri/nri.sock"' in config


@pytest.mark.every_containerd
def test_the_daemonset_pod_records_the_demo(sandbox_node: SandboxNode, recorder_image: str, tmp_path: Path) -> None:
    with run_recorder_pod(sandbox_node, tmp_path) as pod:
        outcome, listing = _record_demo(sandbox_node, pod)
        assert outcome.startswith("saved"), pod.log()[-2000:]
        assert listing == list(images.DEMO_STARTUP_FILES)
        assert "INCOMPLETE" not in pod.log()
        # terminationGracePeriodSeconds: the recorder stops cleanly within it.
        grace = podspec.pod_template(daemonset())["terminationGracePeriodSeconds"]
        sandbox_node.cri.stop_container(pod.container_id, timeout=grace)
        assert sandbox_node.cri.container_status(pod.container_id).exit_code == 0


def test_the_daemonset_pod_pushes_what_it_records(sandbox_node: SandboxNode, recorder_image: str,
                                                  deploy_registry: LocalRegistry, tmp_path: Path) -> None:
    """With ``[registry] push = true`` in the ConfigMap the pod's list reaches the registry, attached
    to the image (read-only root, no service account: the push needs neither)."""
    ref = f"{deploy_registry.host}/apps/demo:1"
    archive = tmp_path / "demo.tar"
    # A copy of the demo with a digest of its own: a second name for the node's demo image would
    # change the name containerd reports for every demo container of later tests.
    images.demo_image(sandbox_node.binaries.busybox, archive, ref, extra={"/etc/copy": ref.encode()})
    deploy_registry.push_archive(archive, ref)
    images.import_image(sandbox_node, archive)
    config = manifest("configmap.yaml")["data"]["config.toml"]
    config += f'\n[registry]\npush = true\nplain_http = ["{deploy_registry.host}"]\n'
    with run_recorder_pod(sandbox_node, tmp_path, config=config) as pod:
        assert pod.wait_for(READY_LINE) == READY_LINE, pod.log()[-2000:]
        demo = sandbox_node.cri.run("demo-pushed", ref)
        sandbox_node.wait_for_log(demo.container_id, images.DEMO_READY_LINE)
        sandbox_node.cri.remove_pod(demo.pod_id)
        pushed = f"pushed {result_paths(PERSIST_IN_POD, ref).list} to {ref} as sha256:"
        assert pod.wait_for(pushed, "cannot push") == pushed, pod.log()[-2000:]
    client = registry.Client(deploy_registry.host, plain_http=True)
    (attached,) = registry.pull_lists(client, registry.parse_reference(ref))
    assert attached.files[""].decode().splitlines() == list(images.DEMO_STARTUP_FILES)


def test_the_pod_runs_with_what_the_manifest_asks(sandbox_node: SandboxNode, recorder_image: str,
                                                  tmp_path: Path) -> None:
    """The runtime applied the translated security context and resources: read the recorder's
    /proc/<pid>/status, mounts, OOM score adjustment and memory cgroup."""
    with run_recorder_pod(sandbox_node, tmp_path) as pod:
        assert pod.wait_for(READY_LINE) == READY_LINE, pod.log()[-2000:]
        pid = sandbox_node.cri.container_status(pod.container_id).pid
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":\t" in line)
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        oom_score_adj = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
        memory_limit = _memory_limit(pid)
    resources = recorder_container(daemonset())["resources"]
    assert memory_limit == podspec.memory_bytes(resources["limits"]["memory"])
    assert oom_score_adj == podspec.oom_score_adj(resources["requests"], resources["limits"],
                                                  podspec.node_memory_bytes())
    effective = int(status["CapEff"], 16)
    added = recorder_container(daemonset())["securityContext"]["capabilities"]["add"]
    assert effective == sum(1 << CAPABILITY_NUMBERS[c] for c in added)
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"  # filter mode
    assert status["Uid"].split()[0] == "0"
    root = next(line for line in mounts if line.split()[4] == "/")
    assert "ro" in root.split()[5].split(",")
    config = next(line for line in mounts if line.split()[4] == "/etc/nydus-top")
    assert "ro" in config.split()[5].split(",")


def _memory_limit(pid: int) -> int:
    """The memory limit of the cgroup *pid* is in (cgroup v1 memory controller, or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
        if controllers == "" and Path(f"/sys/fs/cgroup{path}/memory.max").exists():
            return int(Path(f"/sys/fs/cgroup{path}/memory.max").read_text())
    raise AssertionError(f"no memory cgroup for pid {pid}")


# Capability numbers of <linux/capability.h> for the ones the manifest may add.
CAPABILITY_NUMBERS = {"DAC_READ_SEARCH": 2, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_NICE": 23}


@pytest.mark.parametrize("missing", recorder_container(daemonset())["securityContext"]["capabilities"]["add"])
def test_every_added_capability_is_needed(sandbox_node: SandboxNode, recorder_image: str, tmp_path: Path,
                                          missing: str) -> None:
    def without(doc: dict) -> None:
        caps = recorder_container(doc)["securityContext"]["capabilities"]
        caps["add"] = [c for c in caps["add"] if c != missing]

    with run_recorder_pod(sandbox_node, tmp_path, edit=without) as pod:
        outcome, listing = _record_demo(sandbox_node, pod)
        log = pod.log()
    assert listing != list(images.DEMO_STARTUP_FILES), f"recorded without {missing}: {log[-2000:]}"
    # The recorder runs and says why it cannot record (SYS_ADMIN, SYS_CHROOT, SYS_PTRACE: joining the
    # container's mount namespace is refused; SYS_NICE: the tracer cannot take its arming priority).
    assert outcome == "cannot record", log[-2000:]


def _log_entries(pod) -> list[dict]:
    """The recorder's log lines as CRI wrote them (``TIME STREAM F LINE``), each parsed as JSON."""
    return [json.loads(line.split(" ", 3)[3]) for line in pod.log().splitlines() if line]


def test_the_pod_is_live_ready_serves_metrics_and_logs_json(sandbox_node: SandboxNode, recorder_image: str,
                                                            tmp_path: Path) -> None:
    """kubelet's probes, as the manifest defines them, against the pod on the sandbox node; its
    metrics count the demo's start; every log line is one JSON object (--log-format json)."""
    with run_recorder_pod(sandbox_node, tmp_path) as pod:
        outcome, listing = _record_demo(sandbox_node, pod)
        assert outcome.startswith("saved"), pod.log()[-2000:]
        assert probe(pod.doc, "livenessProbe")[0] == 200
        assert probe(pod.doc, "readinessProbe")[0] == 200
        port = recorder_container(pod.doc)["ports"][0]["containerPort"]
        metrics = _get(port, "/metrics")
        entries = _log_entries(pod)
    assert re.search(r"^nydus_top_container_starts_recorded_total [1-9]", metrics, re.MULTILINE), metrics[:2000]
    assert re.search(r"^nydus_top_nri_connected 1\.0$", metrics, re.MULTILINE)
    saved = [e for e in entries if e["event"].startswith("saved ")]
    assert saved and saved[0]["image"] and saved[0]["container"], entries[-5:]
    assert {e["level"] for e in entries} <= {"info", "warning", "error"}


def _get(port: int, path: str) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_the_pod_pushes_with_the_registry_credentials_secret(sandbox_node: SandboxNode, recorder_image: str,
                                                              tmp_path: Path) -> None:
    """The optional ``kubernetes.io/dockerconfigjson`` Secret, mounted as the manifest says, gives
    the pod's pushes the credentials of a registry that asks for them (htpasswd)."""
    (tmp_path / "auth-registry").mkdir()
    reg = local_registry.start(tmp_path / "auth-registry", credentials=("pod", "Pod-pa55"))
    try:
        ref = f"{reg.host}/apps/demo-auth:1"
        archive = tmp_path / "demo.tar"
        images.demo_image(sandbox_node.binaries.busybox, archive, ref, extra={"/etc/copy": ref.encode()})
        reg.push_archive(archive, ref)
        images.import_image(sandbox_node, archive)
        config = manifest("configmap.yaml")["data"]["config.toml"]
        config += f'\n[registry]\npush = true\nplain_http = ["{reg.host}"]\n'
        secret = {"nydus-top-registry": {".dockerconfigjson": reg.docker_config()}}
        with run_recorder_pod(sandbox_node, tmp_path, config=config, secrets=secret) as pod:
            assert pod.wait_for(READY_LINE) == READY_LINE, pod.log()[-2000:]
            demo = sandbox_node.cri.run("demo-auth", ref)
            sandbox_node.wait_for_log(demo.container_id, images.DEMO_READY_LINE)
            sandbox_node.cri.remove_pod(demo.pod_id)
            pushed = f"pushed {result_paths(PERSIST_IN_POD, ref).list} to {ref} as sha256:"
            assert pod.wait_for(pushed, "cannot push") == pushed, pod.log()[-2000:]
    finally:
        reg.stop()
