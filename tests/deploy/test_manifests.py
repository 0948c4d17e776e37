"""deploy/: every manifest valid against the Kubernetes schemas (strict), kustomize-ready, config loadable."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from nydus_top.config import parse_layer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
# The oldest Kubernetes release still in upstream support when written, and the newest schemas shipped.
VERSIONS = ("1.33.0", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_wrong_field() -> None:
    daemonset = documents(DEPLOY / "daemonset.yaml")[0]
    daemonset["spec"]["template"]["spec"]["hostPid"] = True  # the field is hostPID
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = documents(DEPLOY / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    namespaces = {doc["metadata"].get("namespace")
                  for p in MANIFESTS for doc in documents(p) if doc["kind"] != "Namespace"}
    assert namespaces == {kustomization["namespace"]}


def test_configmap_holds_a_config_nydus_top_accepts() -> None:
    configmap = documents(DEPLOY / "configmap.yaml")[0]
    values, notes = parse_layer(configmap["data"]["config.toml"], "configmap")
    assert str(values["persist_dir"]) == "/opt/nri/optimizer/results" and notes == []
    daemonset = documents(DEPLOY / "daemonset.yaml")[0]
    mounts = {m["mountPath"] for m in daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert {"/opt/nri/optimizer/results", "/var/run/nri", "/etc/nydus-top"} <= mounts


def test_the_memory_limit_holds_the_recorders_worst_case_and_the_readme_states_it() -> None:
    import re

    from nydus_top.recording.recorder import MEMORY_WORST_CASE
    from sandbox import podspec

    pod = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["spec"]
    limit = podspec.memory_bytes(pod["containers"][0]["resources"]["limits"]["memory"])
    assert MEMORY_WORST_CASE <= limit  # files, ranges, file and range tracers at their limits, the process
    readme = (DEPLOY.parent / "README.md").read_text()
    stated = re.search(r"Resources \(requests 60m CPU and 64 MiB, limit\s+(\d+)\s+MiB", readme)
    assert stated is not None and int(stated[1]) << 20 == limit
    assert f"{MEMORY_WORST_CASE >> 20:,} MiB" in readme


def _mib(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_the_readme_states_the_manifests_memory_limit() -> None:
    # issue 18 item 22: the README said 512 MiB while the manifest said 1Gi.
    container = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    limit = _mib(container["resources"]["limits"]["memory"])
    stated = f"{limit // 1024} GiB" if limit % 1024 == 0 else f"{limit} MiB"
    readme = " ".join((DEPLOY.parent / "README.md").read_text().split())
    assert f"limit {stated}" in readme and f"memory limit is {stated}" in readme
    assert "limit 512 MiB" not in readme and "equivalent to root on its node" in readme


def test_the_probes_and_metrics_port_match_the_configmap_address() -> None:
    from nydus_top.config import parse_address

    container = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    values, _ = parse_layer(documents(DEPLOY / "configmap.yaml")[0]["data"]["config.toml"], "configmap")
    host, port = parse_address(values["metrics_address"])
    assert host is None  # every interface: kubelet probes the pod's IP
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert ["--log-format", "json"] == container["args"][-2:]
    annotations = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


def test_the_readiness_probe_outlasts_the_longest_reconnection_wait() -> None:
    """A containerd restart: the session retries every CONNECT_RETRY while nothing listens, and
    waits at most backoff[1] (5 s) after failed connections; readiness must not drop before that,
    and liveness never depends on containerd (it is the loop answering)."""
    import inspect

    from nydus_top.nri.session import PluginSession

    longest_wait = inspect.signature(PluginSession).parameters["backoff"].default[1]
    container = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    ready = container["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] > longest_wait
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30


def test_the_grace_period_covers_the_shutdown_bound() -> None:
    from nydus_top.commands.record import PUSH_DRAIN_SECONDS

    nri_bound = 2.0  # README "Limits": SIGTERM ends the NRI session within 2 s
    push_close = 5.0  # ListPusher.close's default timeout for the pushes under way
    pod = documents(DEPLOY / "daemonset.yaml")[0]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= nri_bound + PUSH_DRAIN_SECONDS + push_close + 2


def test_the_optional_podmonitor_selects_the_recorder_pods_by_their_metrics_port() -> None:
    monitor = documents(DEPLOY / "optional" / "podmonitor.yaml")[0]
    daemonset = documents(DEPLOY / "daemonset.yaml")[0]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    assert monitor["metadata"]["namespace"] == daemonset["metadata"]["namespace"]
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    # Its own fields, as the Prometheus Operator's CRD defines them (no schema offline to check against).
    assert set(monitor["spec"]) == {"selector", "podMetricsEndpoints"}
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
