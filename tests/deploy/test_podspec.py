"""sandbox.podspec: the pod spec -> CRI translation follows kubelet's rules and refuses what it does not know."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sandbox import cri, podspec
from testkit.recorder_pod import daemonset, manifest

GIB = 1 << 30


@pytest.fixture(scope="module")
def pb():
    return cri.load_modules()[0]


def _translate(pb, tmp_path: Path, doc: dict) -> podspec.Translated:
    configmap = manifest("configmap.yaml")
    host_paths = {"/var/run/nri": tmp_path / "nri", "/opt/nri/optimizer/results": tmp_path / "results"}
    (tmp_path / "nri").mkdir(exist_ok=True)
    made = podspec.Volumes(tmp_path / "volumes", host_paths, {configmap["metadata"]["name"]: configmap["data"]})
    made.host_dir = lambda volume: (tmp_path / volume["name"], False)  # no tmpfs needed here
    return podspec.translate(pb, podspec.pod_template(doc), made, name="p", namespace="ns", uid="u",
                             cgroup_parent="/cg", node_memory=8 * GIB)


def test_the_daemonset_translates_as_kubelet_would(pb, tmp_path: Path) -> None:
    translated = _translate(pb, tmp_path, daemonset())
    sandbox = translated.sandbox.linux.security_context
    assert sandbox.namespace_options.pid == podspec.NAMESPACE_NODE  # hostPID
    (container,) = translated.containers
    sc = container.linux.security_context
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert "DAC_READ_SEARCH" not in sc.capabilities.add_capabilities and "SYS_ADMIN" in sc.capabilities.add_capabilities
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert sc.seccomp.profile_type == podspec.PROFILE_RUNTIME_DEFAULT and sc.HasField("run_as_user")
    assert "/proc/kcore" in sc.masked_paths and "/proc/sys" in sc.readonly_paths
    resources = daemonset()["spec"]["template"]["spec"]["containers"][0]["resources"]
    res = container.linux.resources
    assert res.memory_limit_in_bytes == podspec.memory_bytes(resources["limits"]["memory"])
    assert res.cpu_shares == podspec.cpu_shares(podspec.milli_cpu(resources["requests"]["cpu"]))
    assert 2 < res.oom_score_adj < 1000  # Burstable
    assert {m.container_path: m.readonly for m in container.mounts}["/etc/nydus-top"] is True
    assert list(container.args) == ["record", "--config", "/etc/nydus-top/config.toml", "--log-format", "json"]
    assert {e.key: e.value for e in container.envs} == {"HOME": "/root"}  # where the pusher finds .docker
    assert {m.container_path: m.readonly for m in container.mounts}["/root/.docker"] is True


def test_an_optional_secret_is_an_empty_directory_when_absent_and_its_items_when_present(tmp_path: Path) -> None:
    volume = next(v for v in daemonset()["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    absent, forced_ro = podspec.Volumes(tmp_path / "absent", {}, {}).host_dir(volume)
    assert forced_ro and list(absent.iterdir()) == []
    data = {".dockerconfigjson": '{"auths": {}}'}
    present, _ = podspec.Volumes(tmp_path / "present", {}, {}, {volume["secret"]["secretName"]: data}).host_dir(volume)
    assert (present / "config.json").read_text() == '{"auths": {}}'


def test_kubelet_arithmetic() -> None:
    assert podspec.cpu_shares(podspec.milli_cpu("50m")) == 51 and podspec.cpu_shares(0) == 2
    assert podspec.milli_cpu("0.5") == 500 and podspec.milli_cpu(2) == 2000
    assert podspec.memory_bytes("64Mi") == 64 << 20 and podspec.memory_bytes("1G") == 10**9
    assert podspec.oom_score_adj({}, {}, GIB) == 1000
    assert podspec.oom_score_adj({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}, 8 * GIB) == -997
    assert podspec.oom_score_adj({"memory": "1Gi"}, {"memory": "2Gi"}, 8 * GIB) == 875
    assert podspec.oom_score_adj({"memory": "8Gi"}, {}, 8 * GIB) == 3


@pytest.mark.parametrize("where,field", [("pod", "hostNetwork"), ("container", "startupProbe"),
                                         ("securityContext", "procMount")])
def test_an_untranslated_field_is_refused(pb, tmp_path: Path, where: str, field: str) -> None:
    doc = copy.deepcopy(daemonset())
    spec = doc["spec"]["template"]["spec"]
    target = {"pod": spec, "container": spec["containers"][0],
              "securityContext": spec["containers"][0]["securityContext"]}[where]
    target[field] = [] if field == "env" else ("Unmasked" if field == "procMount" else True)
    with pytest.raises(podspec.PodSpecError, match=field):
        _translate(pb, tmp_path, doc)
