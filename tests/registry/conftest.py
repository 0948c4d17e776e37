"""A real registry (CNCF distribution, Debian's docker-registry) on 127.0.0.1, storage in a temp dir."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from sandbox import images  # noqa: E402

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    process: subprocess.Popen[str]

    def push_archive(self, archive: Path, ref: str) -> str:
        """Upload an OCI archive written by sandbox.images.build_image as *ref*; its manifest digest."""
        repo, _, tag = ref.partition("/")[2].rpartition(":")
        with tarfile.open(archive) as tar:
            blobs = {m.name[len("blobs/sha256/"):]: tar.extractfile(m).read()  # type: ignore[union-attr]
                     for m in tar.getmembers() if m.name.startswith("blobs/sha256/")}
            index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"]
        manifest = blobs[manifest_digest[7:]]
        base = f"http://{self.host}/v2/{repo}"
        for hexdigest, data in blobs.items():
            if hexdigest == manifest_digest[7:]:
                continue
            start = requests.post(f"{base}/blobs/uploads/", timeout=30)
            location = start.headers["Location"]
            sep = "&" if "?" in location else "?"
            url = location if location.startswith("http") else f"http://{self.host}{location}"
            done = requests.put(f"{url}{sep}digest=sha256:{hexdigest}", data=data, timeout=30,
                                headers={"Content-Type": "application/octet-stream"})
            assert done.status_code == 201, done.text
        put = requests.put(f"{base}/manifests/{tag}", data=manifest, timeout=30,
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == manifest_digest
        return manifest_digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """distribution listening on 127.0.0.1 only; ready once it logs that it listens."""
    if not os.access(REGISTRY_BINARY, os.X_OK):
        pytest.fail(f"{REGISTRY_BINARY} missing: scripts/setup installs Debian's docker-registry")
    work = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = work / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: nydus-top-tests\n")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the event we wait for: its "listening on" log line
            if f"listening on 127.0.0.1:{port}" in line:
                break
        else:
            pytest.fail(f"docker-registry exited with {process.wait()} before listening")
        # Keep draining its log so it never blocks on a full pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield LocalRegistry(f"127.0.0.1:{port}", work / "data", process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def pushed_image(local_registry: LocalRegistry, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A small real OCI image in the local registry, in a repository of this test's own:
    (reference, manifest digest)."""
    archive = tmp_path / "app.tar"
    repo = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    ref = f"{local_registry.host}/team/{repo}:1"
    images.build_image(ref, {"/bin/app": images.File(b"#!/bin/sh\necho app\n", 0o755), "/etc/app.conf": b"x=1\n"},
                       ["/bin/app"], archive)
    return ref, local_registry.push_archive(archive, ref)
