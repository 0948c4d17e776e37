"""`nydus-top convert --format estargz|zstdchunked` with the real ctr-remote (Debian's stargz-snapshotter)
on the sandbox node's content store, pushed to the local registry; the pushed layers are read back
by our own reader (scripts/testkit/estargz.py): the list's files come first, in its order, up to
the prefetch landmark, and nothing else does."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile

from .conftest import LocalRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from sandbox import images
from sandbox.ctrremote import ctr_remote
from sandbox.node import SandboxNode
from testkit.estargz import LANDMARK, before_landmark, toc_names, zstd_tar_names

# Deliberately neither alphabetical nor the image's tar order; one file lives in a directory of
# its own, one is a symlink's target.
LISTED = ("/usr/share/app/models/large.bin", "/etc/app.conf", "/bin/busybox", "/usr/lib/app/plugin.so")
FILES: dict[str, images.Content] = {
    "/etc/app.conf": b"x = 1\n",
    "/etc/unlisted.conf": b"y = 2\n",
    "/usr/share/app/models/large.bin": bytes(range(256)) * 4096,
    "/usr/share/app/models/unlisted.bin": b"u" * 70000,
    "/usr/lib/app/plugin.so": b"\x7fELF" + b"p" * 5000,
    "/usr/lib/app/other.so": b"\x7fELF" + b"o" * 5000,
}


def _get(url: str, accept: str = "") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as answer:  # 127.0.0.1 only
        return bytes(answer.read())


def _layers(registry: LocalRegistry, ref: str) -> list[tuple[str, bytes]]:
    """(media type, blob) of each layer of *ref* as the registry serves it."""
    repo, _, tag = ref.partition("/")[2].rpartition(":")
    base = f"http://{registry.host}/v2/{repo}"
    manifest = json.loads(_get(f"{base}/manifests/{tag}", "application/vnd.oci.image.manifest.v1+json"))
    return [(layer["mediaType"], _get(f"{base}/blobs/{layer['digest']}")) for layer in manifest["layers"]]


@pytest.fixture
def source(sandbox_node: SandboxNode, request: pytest.FixtureRequest) -> str:
    """A small image in the node's k8s.io namespace (where CRI, and so a recording, finds it)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50]
    files = {**images.busybox_files(sandbox_node.binaries.busybox), **FILES}
    return sandbox_node.load_image(f"nydus-top.local/{name}:1", files, ["/bin/sh", "-c", "cat /etc/app.conf"])


@pytest.mark.parametrize("fmt", ["estargz", "zstdchunked"])
def test_convert_puts_the_list_first_in_its_order(
    fmt: str, source: str, sandbox_node: SandboxNode, local_registry: LocalRegistry, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = tmp_path / "app:1"
    save_list([ListedFile(path) for path in (*LISTED, "/etc/app.conf")], listed, meta=ListMeta(image=source))
    target = f"{local_registry.host}/converted/{fmt}:1"
    code = main(["convert", str(listed), "--format", fmt, "--ctr-remote", str(ctr_remote()),
                 "--address", str(sandbox_node.containerd_socket), "--target", target, "--plain-http"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"--{fmt}-record-in /dev/stdin {source} {target} < record" in out
    assert f"image push --plain-http {target}" in out  # the push ran as the second step, shown
    assert "conversion succeeded" in out

    (media_type, blob), = _layers(local_registry, target)
    assert media_type == ("application/vnd.oci.image.layer.v1.tar+gzip" if fmt == "estargz"
                          else "application/vnd.oci.image.layer.v1.tar+zstd")
    names = toc_names(blob) if fmt == "estargz" else zstd_tar_names(blob)
    first = before_landmark(names)
    assert first is not None, names
    assert [path for kind, path in first if kind != "dir"] == list(LISTED)
    parents = {str(parent) for path in LISTED for parent in Path(path).parents}
    assert {path for kind, path in first if kind == "dir"} <= parents  # only the listed files' directories
    rest = [path for _, path in names[len(first) + 1:]]
    assert f"/{LANDMARK}" not in rest and {"/etc/unlisted.conf", "/usr/lib/app/other.so"} <= set(rest)


def test_a_source_the_node_lacks_fails_with_ctr_remotes_status(
    sandbox_node: SandboxNode, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    listed = tmp_path / "app:1"
    save_list([ListedFile("/etc/app.conf")], listed, meta=ListMeta(image="nydus-top.local/absent:1"))
    code = main(["convert", str(listed), "--format", "estargz", "--ctr-remote", str(ctr_remote()),
                 "--address", str(sandbox_node.containerd_socket), "--no-push"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "image push" not in out  # a failed conversion pushes nothing
    assert re.search(r"conversion failed after [0-9.]+s: ctr-remote exited with status \d+", err), err
