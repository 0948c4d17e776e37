"""Local OCI image archives (pure Python, no containerd) and the apt mirror parsing of the sandbox."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from sandbox import images
from sandbox.aptfetch import Mirror, parse_deb822_mirror, parse_sources_list_mirror
from sandbox.cri import strip_gogoproto


def _read_archive(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _blob(layout: dict[str, bytes], digest: str) -> bytes:
    data = layout[f"blobs/sha256/{digest.removeprefix('sha256:')}"]
    assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:")
    return data


def test_archive_is_a_valid_reproducible_oci_layout(tmp_path: Path) -> None:
    files = {"/bin/tool": images.File(b"\x7fELF...", 0o755), "/etc/a b.conf": b"x=1\n",
             "/bin/alias": images.Symlink("tool"), "/host/file": tmp_path / "src"}
    (tmp_path / "src").write_bytes(b"from the host\n")
    (tmp_path / "src").chmod(0o640)
    os.utime(tmp_path / "src", (1_700_000_000, 1_700_000_000))  # Python's .pyc files are checked against it
    ref = images.build_image("nydus-top.local/t:2", files, ["/bin/tool", "-v"], tmp_path / "one.tar")
    images.build_image("nydus-top.local/t:2", files, ["/bin/tool", "-v"], tmp_path / "two.tar")
    assert ref == "nydus-top.local/t:2"
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()

    layout = _read_archive(tmp_path / "one.tar")
    assert json.loads(layout["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    [entry] = json.loads(layout["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == ref
    manifest = json.loads(_blob(layout, entry["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    assert config["config"]["Entrypoint"] == ["/bin/tool", "-v"]
    [layer_desc] = manifest["layers"]
    layer = gzip.decompress(_blob(layout, layer_desc["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {"bin", "etc", "host"} <= set(members)
        assert members["bin/tool"].mode == 0o755
        assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
        assert tar.extractfile("etc/a b.conf").read() == b"x=1\n"
        assert members["host/file"].mode == 0o640 and members["host/file"].mtime == 1_700_000_000
        assert members["etc/a b.conf"].mtime == 0
        assert tar.extractfile("host/file").read() == b"from the host\n"


def test_demo_image_holds_every_startup_file_and_script_reads_them_in_order(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"not really busybox")
    images.demo_image(busybox, tmp_path / "demo.tar")
    layout = _read_archive(tmp_path / "demo.tar")
    [entry] = json.loads(layout["index.json"])["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]))
    layer = gzip.decompress(_blob(layout, manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        names = {"/" + m.name for m in tar.getmembers()}
        script = tar.extractfile("app/start.sh").read().decode()
    assert set(images.DEMO_STARTUP_FILES) - set(images.DEMO_CREATED_FILES) | set(images.DEMO_UNREAD_FILES) <= names
    assert not set(images.DEMO_CREATED_FILES) & names  # written at start: created at runtime
    assert images.DEMO_STARTUP_FILES[:2] == ("/bin/busybox", "/app/start.sh")
    for path, size in images.DEMO_PARTIAL_READS.items():
        assert f"head -c {size} '{path}'" in script  # read only in part: its byte ranges show it
    positions = [script.index(f"'{path}'") for path in images.DEMO_STARTUP_FILES[2:]]
    assert positions == sorted(positions)
    assert not any(path in script for path in images.DEMO_UNREAD_FILES)
    # After start-up it keeps reading a few start-up files (so a trace of the running demo shows
    # something, and a recording's list stays the same).
    assert set(images.DEMO_PERIODIC_FILES) <= set(images.DEMO_STARTUP_FILES)
    loop = script[script.index(images.DEMO_READY_LINE):]
    assert f"sleep {images.DEMO_PERIOD_S}" in loop and all(f"'{p}'" in loop for p in images.DEMO_PERIODIC_FILES)


def test_mirror_is_read_from_deb822_sources() -> None:
    text = """Types: deb
# http://snapshot.example/archive
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""
    assert parse_deb822_mirror(text) == Mirror("http://mirror.example/debian",
                                               "/usr/share/keyrings/debian-archive-keyring.gpg")
    assert parse_deb822_mirror("Types: deb-src\nURIs: http://x/\nSuites: bookworm\n") is None


def test_mirror_is_read_from_sources_list() -> None:
    text = ("# comment\ndeb http://security.example/debian-security bookworm-security main\n"
            "deb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert parse_sources_list_mirror(text).uri == "http://mirror.example/debian"
    assert parse_sources_list_mirror("deb-src http://x/ bookworm main\n") is None


def test_gogoproto_annotations_are_removed() -> None:
    proto = ('syntax = "proto3";\npackage runtime.v1;\nimport "github.com/gogo/protobuf/gogoproto/gogo.proto";\n'
             "option (gogoproto.sizer_all) = true;\n"
             "message A { repeated B b = 1 [(gogoproto.nullable) = false]; }\n")
    stripped = strip_gogoproto(proto)
    assert "gogo" not in stripped
    assert "repeated B b = 1;" in stripped
