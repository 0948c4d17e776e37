"""The image scripts/build-image makes is the one the manifest names, and says the platform its
binaries are for (this host's), so nodes of another architecture refuse it (issue 19 item 18)."""

from __future__ import annotations

import json
import platform
import re
import tarfile
from pathlib import Path

import yaml

from sandbox import images, recorder_image

ROOT = Path(__file__).resolve().parents[2]
MACHINE_TO_OCI = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def test_the_manifest_names_the_image_build_image_tags() -> None:
    daemonset = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "daemonset.yaml").read_text()) if d)
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    default = re.search(r"^ref=\$\{2:-(.+)\}$", (ROOT / "scripts" / "build-image").read_text(), re.M)
    assert default is not None
    assert container["image"] == default.group(1) == recorder_image.DEFAULT_REF


def test_the_image_platform_is_this_hosts(tmp_path: Path) -> None:
    arch, glibc = recorder_image.host_platform()
    assert arch == MACHINE_TO_OCI[platform.machine()]
    assert glibc.startswith(platform.libc_ver()[1])  # Debian's libc6 version, e.g. 2.36-9+deb12u10
    archive = tmp_path / "image.tar"
    images.build_image("nydus-top.local/p:1", {"/x": b"x"}, ["/x"], archive, architecture="arm64")
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (entry,) = index["manifests"]
        manifest = json.load(tar.extractfile("blobs/" + entry["digest"].replace(":", "/")))  # type: ignore[arg-type]
        config = json.load(tar.extractfile("blobs/" + manifest["config"]["digest"].replace(":", "/")))  # type: ignore[arg-type]
    assert entry["platform"] == {"architecture": "arm64", "os": "linux"}
    assert (config["architecture"], config["os"]) == ("arm64", "linux")


def test_the_readme_fleet_path_names_what_the_manifests_say() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    daemonset = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "daemonset.yaml").read_text()) if d)
    image = daemonset["spec"]["template"]["spec"]["containers"][0]["image"]
    name, namespace = daemonset["metadata"]["name"], daemonset["metadata"]["namespace"]
    persist = re.search(r'persist_dir = "([^"]+)"', (ROOT / "deploy" / "configmap.yaml").read_text())
    assert persist is not None
    for step in (f"kustomize edit set image {image.rpartition(':')[0]}=", f"kubectl -n {namespace} logs ds/{name}",
                 f"recording container starts via /var/run/nri/nri.sock into {persist.group(1)}",
                 "kubectl delete -k deploy/", f"ctr -n k8s.io images rm {image}"):
        assert step in readme
