"""Local single-layer OCI images, built in Python and imported into containerd (no registry).

``build_image`` writes an OCI archive (``oci-layout``, ``index.json`` naming the image through
``io.containerd.image.name``, manifest, config and one gzip layer) from a dict of files; archives
are byte-for-byte reproducible. ``import_image`` loads one into the CRI namespace with ``ctr``.
Two images come with the sandbox: a pause image and a demo workload that reads ``DEMO_STARTUP_FILES``
at start-up, prints ``DEMO_READY_LINE`` and keeps running.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PAUSE_IMAGE = "nydus-top.local/pause:1"
DEMO_IMAGE = "nydus-top.local/demo:1"
DEMO_READY_LINE = "demo: startup files read"


@dataclass(frozen=True)
class File:
    """A regular file of an image: its content and mode."""

    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Symlink:
    target: str


Content = bytes | Path | File | Symlink  # what one path of an image holds


class Node(Protocol):
    """What ``import_image`` needs of a sandbox node."""

    ctr: Path
    containerd_socket: Path


def _layer_tar(files: Mapping[str, Content]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            _add_entry(tar, "/".join(parts), files[path])
    return out.getvalue()


def _add_entry(tar: tarfile.TarFile, name: str, entry: Content) -> None:
    info = tarfile.TarInfo(name)
    if isinstance(entry, Symlink):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
        tar.addfile(info)
        return
    if isinstance(entry, Path):  # its mtime too: Python checks its .pyc files against it
        info.mtime = int(entry.stat().st_mtime)
        entry = File(entry.read_bytes(), entry.stat().st_mode & 0o7777)
    elif isinstance(entry, bytes):
        entry = File(entry)
    info.size, info.mode = len(entry.data), entry.mode
    tar.addfile(info, io.BytesIO(entry.data))


def _blob(layout: dict[str, bytes], data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layout[f"blobs/sha256/{digest[7:]}"] = data
    return digest, len(data)


def build_image(ref: str, files: Mapping[str, Content], entrypoint: Sequence[str], archive: Path, *,
                cmd: Sequence[str] = (), env: Sequence[str] = ("PATH=/bin:/usr/bin:/sbin:/usr/sbin",),
                workdir: str = "/", architecture: str = "amd64") -> str:
    """Write an OCI image archive of ``files`` (absolute path -> content) to ``archive``; returns ``ref``.

    Content may be bytes (mode 0644), a host ``Path`` (content, mode and mtime copied), a ``File`` or a
    ``Symlink``. Parent directories are created implicitly. *architecture*: the OCI platform's
    (``amd64``, ``arm64``), in the config and the index.
    """
    tar = _layer_tar(files)
    layer = gzip.compress(tar, mtime=0)
    layout: dict[str, bytes] = {}
    layer_digest, layer_size = _blob(layout, layer)
    config = json.dumps({
        "architecture": architecture, "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "Cmd": list(cmd), "Env": list(env), "WorkingDir": workdir},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }, sort_keys=True).encode()
    config_digest, config_size = _blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }, sort_keys=True).encode()
    manifest_digest, manifest_size = _blob(layout, manifest)
    layout["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    layout["index.json"] = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "platform": {"architecture": architecture, "os": "linux"},
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rpartition(":")[2]}}],
    }, sort_keys=True).encode()
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")  # concurrent builders may race
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        for name in sorted(layout):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(layout[name]), 0o644
            out.addfile(info, io.BytesIO(layout[name]))
    tmp.rename(archive)
    return ref


def import_image(node: Node, archive: Path) -> None:
    """Import an OCI archive into the node's ``k8s.io`` namespace, where CRI sees it at once (unpacked
    for the node's snapshotter, the stargz one on a lazy node)."""
    _ctr(node, "images", "import", f"--snapshotter={getattr(node, 'snapshotter', 'overlayfs')}", str(archive))


def _ctr(node: Node, *args: str, timeout: float = 120.0) -> str:
    command = [str(node.ctr), "--address", str(node.containerd_socket), "-n", "k8s.io", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ctr {' '.join(args)} did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def list_images(node: Node) -> dict[str, str]:
    """Image references of the node's ``k8s.io`` namespace and their manifest digests."""
    rows = [line.split() for line in _ctr(node, "images", "ls").splitlines()[1:]]
    return {row[0]: row[2] for row in rows if len(row) >= 3}


def archive_digest(archive: Path) -> str:
    """The manifest digest of an archive written by ``build_image``."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def busybox_files(busybox: Path, applets: Sequence[str] = ("sh", "cat", "sleep", "echo")) -> dict[str, Content]:
    """A static busybox at ``/bin/busybox`` with ``/bin/<applet>`` symlinks."""
    files: dict[str, Content] = {"/bin/busybox": File(busybox.read_bytes(), 0o755)}
    files.update({f"/bin/{applet}": Symlink("busybox") for applet in applets})
    return files


def pause_image(busybox: Path, archive: Path) -> str:
    """A pause image: its entrypoint blocks until it is signalled."""
    script = "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"
    return build_image(PAUSE_IMAGE, busybox_files(busybox), ["/bin/sh", "-c", script], archive)


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# The demo's files besides busybox, in the order its entrypoint reads them.
_DEMO_DATA: dict[str, bytes] = {
    "/etc/demo/app.conf": b"[server]\nlisten = 127.0.0.1:8080\nworkers = 4\n[cache]\ndir = /var/cache/demo\n",
    "/etc/demo/logging.conf": b"level = info\nformat = json\n",
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "/usr/share/demo/data/small.bin": _data(1024, 1),
    "/usr/share/demo/data/file with space.txt": b"a file name with a space in it\n",
    "/usr/share/demo/data/medium.bin": _data(256 * 1024, 2),
    "/usr/share/demo/models/large.bin": _data(2 * 1024 * 1024, 3),
    "/usr/share/demo/empty": b"",
}
_DEMO_SCRIPT = "/app/start.sh"

# Written by the demo as it starts (not in the image): flagged as created at runtime.
DEMO_CREATED_FILES: tuple[str, ...] = ("/app/demo.pid",)
# Files the demo's start-up only partly reads: the first this many bytes (the rest are read whole).
DEMO_PARTIAL_READS: dict[str, int] = {"/usr/share/demo/models/large.bin": 64 * 1024}
# Files the demo's start-up opens, in order of first access: the shell (static busybox, no
# libraries), its script, the file it creates, then every config and data file. Not read:
# ``/usr/share/demo/unused.txt``.
DEMO_STARTUP_FILES: tuple[str, ...] = ("/bin/busybox", _DEMO_SCRIPT, *DEMO_CREATED_FILES, *_DEMO_DATA)
DEMO_UNREAD_FILES: tuple[str, ...] = ("/usr/share/demo/unused.txt",)
# After start-up the demo keeps reading these (start-up files: a recording's list is unchanged)
# every DEMO_PERIOD_S seconds, so a trace attached to the running demo shows accesses.
DEMO_PERIODIC_FILES: tuple[str, ...] = ("/etc/demo/app.conf", "/usr/share/demo/data/small.bin")
DEMO_PERIOD_S = 2


def _read(path: str) -> str:
    part = DEMO_PARTIAL_READS.get(path)
    return f"cat '{path}' >/dev/null\n" if part is None else f"head -c {part} '{path}' >/dev/null\n"


def _demo_script() -> bytes:
    created = "".join(f"echo $$ >'{path}'\n" for path in DEMO_CREATED_FILES)
    reads = "".join(_read(path) for path in _DEMO_DATA)
    again = " ".join(f"'{path}'" for path in DEMO_PERIODIC_FILES)
    return (
        "#!/bin/sh\n# Demo workload: write its pid file, read the start-up files (one only in part),\n"
        f"# say so, then read a few of them again every {DEMO_PERIOD_S} s until stopped.\n"
        f"{created}{reads}echo '{DEMO_READY_LINE}'\n"
        f"trap 'exit 0' TERM INT\nwhile :; do sleep {DEMO_PERIOD_S} & wait $!; cat {again} >/dev/null; done\n"
    ).encode()


def demo_image(busybox: Path, archive: Path, ref: str = DEMO_IMAGE, extra: Mapping[str, Content] | None = None) -> str:
    """The demo workload image (see ``DEMO_STARTUP_FILES``); *extra* files (never read) give a copy
    of it under another name a digest of its own, so that no image of the node has two names."""
    files = busybox_files(busybox, ("sh", "cat", "sleep", "echo", "head"))
    files[_DEMO_SCRIPT] = File(_demo_script(), 0o755)
    files.update(_DEMO_DATA)
    files.update({path: b"never read at start-up\n" for path in DEMO_UNREAD_FILES})
    files.update(extra or {})
    return build_image(ref, files, ["/bin/sh", _DEMO_SCRIPT], archive)
