"""The sandbox node's containerd configs and start-up log checks, per containerd version (no containerd run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli

from sandbox.node import CONTAINERD_SUITES, SandboxError, SandboxNode, containerd_config, is_fatal_plugin_failure

D = Path("/srv/node dir")

# Lines as containerd 1.7 and 2.1 log them (2.1.9: seen with a missing snapshotter).
FAILED_17 = ('time="2026-12-01T10:00:00Z" level=warning msg="failed to load plugin io.containerd.grpc.v1.cri" '
             'error="invalid plugin config: `restrict_oom_score_adj` is wrong"')
FAILED_21 = ('time="2026-12-01T22:12:49.637884726Z" level=warning msg="failed to load plugin" error="unable to load '
             'CRI image service plugin dependency: failed to find snapshotter \\"nosuch\\"" '
             'id=io.containerd.grpc.v1.cri type=io.containerd.grpc.v1')
FAILED_NRI_21 = ('time="2026-12-01T22:12:49Z" level=warning msg="failed to load plugin" error="boom" '
                 'id=io.containerd.nri.v1.nri type=io.containerd.nri.v1')
HARMLESS = [
    'time="2026-12-01T22:12:37Z" level=info msg="skip loading plugin" error="skip plugin: tracing endpoint not '
    'configured" id=io.containerd.internal.v1.tracing type=io.containerd.internal.v1',
    'time="2026-12-01T22:12:37Z" level=error msg="failed to load cni during init, please check CRI plugin status '
    'before setting up network for pods" error="cni config load failed: no network config found"',
    'time="2026-12-01T22:12:49Z" level=warning msg="failed to load plugin" error="x" '
    'id=io.containerd.grpc.v1.cri-extra type=io.containerd.grpc.v1',
    'time="2026-12-01T22:12:49Z" level=info msg="loading plugin" id=io.containerd.grpc.v1.cri '
    'type=io.containerd.grpc.v1',
]


def _paths(value: object) -> list[str]:
    """Every absolute path among the config's string values."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


@pytest.mark.parametrize("version, schema", [("1.7", 2), ("2.1", 3)])
def test_config_keeps_the_node_under_its_directory(version: str, schema: int) -> None:
    config = tomli.loads(containerd_config(D, "nydus-top.local/pause:1", version))
    assert config["version"] == schema
    plugins = config["plugins"]
    nri = plugins["io.containerd.nri.v1.nri"]
    assert nri["disable"] is False and nri["socket_path"] == f"{D}/nri/nri.sock"
    assert (nri["plugin_path"], nri["plugin_config_path"]) == (f"{D}/nri/plugins", f"{D}/nri/conf.d")
    runtime = plugins["io.containerd.grpc.v1.cri" if schema == 2 else "io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True and runtime["disable_apparmor"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["Root"] == f"{D}/runc"
    if schema == 3:
        assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "nydus-top.local/pause:1"
    else:
        assert runtime["sandbox_image"] == "nydus-top.local/pause:1"
    outside = [p for p in _paths(config) if not p.startswith(f"{D}/") and p != "/usr/sbin/runc"]
    assert outside == []


def test_only_a_cri_or_nri_load_failure_is_fatal() -> None:
    assert all(is_fatal_plugin_failure(line) for line in (FAILED_17, FAILED_21, FAILED_NRI_21))
    assert not any(is_fatal_plugin_failure(line) for line in HARMLESS)


def test_unknown_containerd_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"containerd '1\.6' not supported \(choose 1\.7 or 2\.1\)"):
        SandboxNode(tmp_path, "1.6")
    assert list(tmp_path.iterdir()) == []
    assert sorted(CONTAINERD_SUITES) == ["1.7", "2.1"]
