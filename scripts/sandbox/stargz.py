"""The stargz snapshotter on the sandbox node: its daemon built from Debian's Go sources, and ``ctr-remote``.

Debian ships stargz-snapshotter's library (``golang-github-containerd-stargz-snapshotter-dev``) but
not its daemon; ``stargz-grpc/main.go`` (ours) wires the library's service as containerd's proxy
snapshotter on a unix socket. The Go toolchain and every Go source package come from Debian forky
(unpacked into the shared cache with ``dpkg -x``, never installed); the build runs in GOPATH mode,
offline. The binary is cached under ``cache_dir()/stargz`` keyed by its inputs, so a machine builds it
once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.aptfetch import AptCache, cache_dir, file_lock

SUITE = "forky"
GO = "golang-1.27"
MAIN_GO = Path(__file__).with_name("stargz-grpc") / "main.go"
IMPORT_PATH = "nydus-top.local/stargz-grpc"
BUILD_TIMEOUT = 1200.0
# Debian -dev packages holding every Go package the daemon imports (found by a build that names what is missing).
_GITHUB = ("beorn7-perks", "cespare-xxhash-v2", "containerd-containerd-api", "containerd-containerd",
           "containerd-continuity", "containerd-errdefs", "containerd-log", "containerd-platforms",
           "containerd-stargz-snapshotter", "containerd-ttrpc", "containerd-typeurl", "coreos-bbolt",
           "distribution-reference", "docker-go-metrics", "go-logr-logr", "go-logr-stdr", "gogo-protobuf",
           "golang-groupcache", "golang-protobuf-1-5", "google-go-cmp", "hanwen-go-fuse", "hashicorp-errwrap",
           "hashicorp-go-cleanhttp", "hashicorp-go-multierror", "hashicorp-go-retryablehttp",
           "klauspost-compress", "kubernetes-cri-api", "moby-locker", "moby-sys", "munnerz-goautoneg",
           "opencontainers-go-digest", "opencontainers-image-spec", "pelletier-go-toml",
           "prometheus-client-golang", "prometheus-client-model", "prometheus-common", "prometheus-procfs",
           "sirupsen-logrus", "vbatts-tar-split")
GO_SOURCES = (tuple(f"golang-github-{name}-dev" for name in _GITHUB)
              + tuple(f"golang-golang-x-{name}-dev" for name in ("net", "sync", "sys", "text"))
              + tuple(f"golang-google-{name}-dev" for name in ("genproto", "grpc", "protobuf"))
              + ("golang-opentelemetry-otel-dev",))


class BuildError(RuntimeError):
    """The snapshotter daemon could not be built; the message says why in one line."""


def ctr_remote(cache: AptCache | None = None) -> Path:
    """``ctr-remote`` from Debian's stargz-snapshotter package (converts, optimizes, rpulls, pushes)."""
    return (cache or AptCache()).unpacked("stargz-snapshotter", SUITE) / "usr/bin/ctr-remote"


def daemon(cache: AptCache | None = None, log: Path | None = None) -> Path:
    """The cached ``containerd-stargz-grpc`` binary, built now if its inputs changed."""
    cache = cache or AptCache()
    toolchain = [cache.unpacked(f"{GO}-go", SUITE), cache.unpacked(f"{GO}-src", SUITE)]
    sources = [cache.unpacked(package, SUITE) for package in GO_SOURCES]
    key = hashlib.sha256(MAIN_GO.read_bytes() + "\n".join(
        str(p) for p in [*toolchain, *sources]).encode()).hexdigest()[:16]
    out_dir = cache_dir() / "stargz"
    binary = out_dir / f"containerd-stargz-grpc-{key}"
    with file_lock(out_dir / "build.lock", BUILD_TIMEOUT):
        if not binary.exists():
            goroot = _merged_root(toolchain, out_dir / f"go-{toolchain[0].name}")
            _build(goroot, sources, binary, out_dir / "gocache", log or out_dir / "build.log")
            for stale in out_dir.glob("containerd-stargz-grpc-*"):
                if stale != binary:
                    stale.unlink(missing_ok=True)
    return binary


def go_binary(root: Path) -> Path:
    return root / f"usr/lib/go-{GO.removeprefix('golang-')}/bin/go"


def _merged_root(packages: list[Path], root: Path) -> Path:
    """One tree holding ``packages`` (the -go package's relative links point into the -src package), hard-linked."""
    if not root.is_dir():
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".merge-") as tmp:
            for package in packages:
                subprocess.run(["cp", "-al", f"{package}/.", tmp], check=True, capture_output=True)
            Path(tmp).rename(root)
            Path(tmp).mkdir()  # for TemporaryDirectory's clean-up
    return root


def _build(goroot: Path, sources: list[Path], binary: Path, gocache: Path, log: Path) -> None:
    go = go_binary(goroot)
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as tmp:
        gopath = Path(tmp) / "gopath"
        package_dir = gopath / "src" / IMPORT_PATH
        package_dir.mkdir(parents=True)
        shutil.copy(MAIN_GO, package_dir / "main.go")
        env = {
            "PATH": f"{go.parent}:/usr/bin:/bin",
            "HOME": tmp,
            "GOROOT": str(go.parent.parent),
            "GOPATH": ":".join([str(gopath), *(str(s / "usr/share/gocode") for s in sources)]),
            "GOCACHE": str(gocache),
            "GO111MODULE": "off",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "",
            "CGO_ENABLED": "0",
        }
        started = time.monotonic()
        output = Path(tmp) / "out"
        with open(log, "w") as log_file:
            done = subprocess.run([str(go), "build", "-trimpath", "-o", str(output), IMPORT_PATH], cwd=package_dir,
                                  env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                  timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            raise BuildError(f"go build failed: {lines[-1] if lines else '(no output)'} (log: {log})")
        with open(log, "a") as log_file:
            log_file.write(f"built in {time.monotonic() - started:.1f}s\n")
        os.replace(output, binary)
