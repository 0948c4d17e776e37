"""A private CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, for tests and benches.

It listens on 127.0.0.1 only, keeps its storage in the directory it is given, and is ready once
it logs that it listens (no polling). ``push_archive`` uploads an OCI archive written by
:func:`sandbox.images.build_image`, with plain HTTP requests (not nydus-top's client).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

BINARY = "/usr/bin/docker-registry"


class RegistryStartError(RuntimeError):
    pass


@dataclass
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    process: subprocess.Popen[str]
    credentials: tuple[str, str] | None = None  # (user, password) it asks for, with htpasswd authentication

    def docker_config(self) -> str:
        """A docker config.json with this registry's credentials (what a dockerconfigjson Secret holds)."""
        assert self.credentials is not None
        token = base64.b64encode(":".join(self.credentials).encode()).decode()
        return json.dumps({"auths": {self.host: {"auth": token}}})

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)

    def _request(self, method: str, url: str, data: bytes | None = None,
                 content_type: str = "") -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(url, data=data, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:  # 127.0.0.1 only
            return answer.status, dict(answer.headers)

    def push_archive(self, archive: Path, ref: str) -> str:
        """Upload an OCI archive as *ref* (``host/repo:tag`` on this registry); its manifest digest."""
        repo, _, tag = ref.partition("/")[2].rpartition(":")
        with tarfile.open(archive) as tar:
            blobs = {}
            for member in tar.getmembers():
                if member.name.startswith("blobs/sha256/"):
                    blobs[member.name[len("blobs/sha256/"):]] = tar.extractfile(member).read()  # type: ignore[union-attr]
            index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"]
        base = f"http://{self.host}/v2/{repo}"
        for hexdigest, data in blobs.items():
            if hexdigest == manifest_digest[7:]:
                continue
            _, headers = self._request("POST", f"{base}/blobs/uploads/", b"")
            location = headers["Location"]
            url = location if location.startswith("http") else f"http://{self.host}{location}"
            sep = "&" if "?" in url else "?"
            self._request("PUT", f"{url}{sep}digest=sha256:{hexdigest}", data, "application/octet-stream")
        manifest = blobs[manifest_digest[7:]]
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == manifest_digest
        self._request("PUT", f"{base}/manifests/{tag}", manifest, "application/vnd.oci.image.manifest.v1+json")
        return manifest_digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_line(user: str, password: str) -> str:
    """An htpasswd line for *user* (bcrypt: the only hash docker-registry accepts), made with
    libxcrypt through Python 3.11's crypt module (no htpasswd binary needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated (gone in 3.13); Debian 12's Python 3.11 has it

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2"):
        raise RegistryStartError("this libc's crypt() makes no bcrypt hashes")
    return f"{user}:{hashed}\n"


def start(work: Path, credentials: tuple[str, str] | None = None) -> LocalRegistry:
    """Start a registry with its storage under *work*; returns once it listens. With
    *credentials* (user, password) it asks for them (htpasswd, HTTP basic authentication)."""
    if not os.access(BINARY, os.X_OK):
        raise RegistryStartError(f"{BINARY} missing: scripts/setup installs Debian's docker-registry")
    port = _free_port()
    config = work / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: nydus-top-local\n")
    if credentials is not None:
        (work / "htpasswd").write_text(bcrypt_line(*credentials))
        with config.open("a") as text:
            text.write(f"auth:\n  htpasswd:\n    realm: nydus-top-local\n    path: {work}/htpasswd\n")
    process = subprocess.Popen([BINARY, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stderr is not None
    for line in process.stderr:  # the event waited for: its "listening on" log line
        if f"listening on 127.0.0.1:{port}" in line:
            break
    else:
        raise RegistryStartError(f"docker-registry exited with {process.wait()} before listening")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # never block it on a full pipe
    return LocalRegistry(f"127.0.0.1:{port}", work / "data", process, credentials)
