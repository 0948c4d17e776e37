"""Result file names are those of nydus-snapshotter's optimizer NRI plugin.

Source read (containerd/nydus-snapshotter @ a7a1f071, 2026-07): ``cmd/optimizer-nri-plugin/main.go``
``GetImageName`` parses the ``io.kubernetes.cri.image-name`` annotation with
``distribution/reference.ParseDockerRef`` (v0.6.0, normalize.go/regexp.go/reference.go), takes
``reference.Path`` (the repository path WITHOUT the registry host), and writes
``filepath.Join(persist_dir, filepath.Dir(path), filepath.Base(path) + ":" + tag)``; with
``timeout > 0`` it appends ``.timeout<N>s`` (``fmt.Sprintf("%s.timeout%ds")``) and
``pkg/fanotify`` adds ``.csv`` for the table. ``filepath.Join`` cleans ``.`` away, so a
one-component path lands in persist_dir itself. Digest references make the optimizer panic on
its ``NamedTagged`` type assertion; we name those after the digest (or the tag, if present).
The expected values below are worked out by hand from that code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists.files import result_name, result_paths

DIGEST = "sha256:" + "0123456789abcdef" * 4

CASES = [
    # docker.io short names gain library/ and the latest tag
    ("nginx", "library", "nginx:latest"),
    ("nginx:1.25-alpine", "library", "nginx:1.25-alpine"),
    ("docker.io/nginx", "library", "nginx:latest"),
    ("docker.io/library/nginx:1.25", "library", "nginx:1.25"),
    ("index.docker.io/library/nginx", "library", "nginx:latest"),
    ("bitnami/redis:7.2", "bitnami", "redis:7.2"),
    ("docker.io/bitnami/redis", "bitnami", "redis:latest"),
    # the registry host never appears in the directory
    ("ghcr.io/dragonflyoss/nydus-snapshotter:v0.15.0", "dragonflyoss", "nydus-snapshotter:v0.15.0"),
    ("quay.io/library/nginx:1.25", "library", "nginx:1.25"),
    ("registry.k8s.io/pause:3.9", ".", "pause:3.9"),
    ("registry.local:5000/team/app/web:v2", "team/app", "web:v2"),
    ("localhost:5000/demo", ".", "demo:latest"),
    ("localhost/demo:1", ".", "demo:1"),
    ("127.0.0.1:5000/a/b:c", "a", "b:c"),
    ("[fc00::1]:5000/docker/docker:x", "docker", "docker:x"),
    ("LOCALDOMAIN/debian", ".", "debian:latest"),  # an uppercase first component is a host
    ("docker/docker", "docker", "docker:latest"),
    ("dock__er/do-ck.er_x:T_a.g-1", "dock__er", "do-ck.er_x:T_a.g-1"),
    ("192.168.0.1:80", "library", "192.168.0.1:80"),  # no slash: a Docker Hub name with tag 80
    # digests: the optimizer panics; we keep the tag when there is one
    (f"busybox@{DIGEST}", "library", f"busybox@{DIGEST}"),
    (f"ghcr.io/org/tool:1.0@{DIGEST}", "org", "tool:1.0"),
]


@pytest.mark.parametrize(("image", "directory", "name"), CASES)
def test_result_name_like_the_optimizer(image: str, directory: str, name: str) -> None:
    assert result_name(image) == (directory, name)


@pytest.mark.parametrize(("image", "directory", "name"), CASES)
def test_result_paths_join_like_filepath_join(tmp_path: Path, image: str, directory: str, name: str) -> None:
    paths = result_paths(tmp_path, image)
    expected = (tmp_path / name) if directory == "." else (tmp_path / directory / name)
    assert paths.list == expected
    assert paths.csv == Path(f"{expected}.csv")


def test_timeout_suffix_precedes_csv() -> None:
    paths = result_paths("/opt/nri/optimizer/results", "nginx:1.25", timeout=30)
    assert str(paths.list) == "/opt/nri/optimizer/results/library/nginx:1.25.timeout30s"
    assert str(paths.csv) == "/opt/nri/optimizer/results/library/nginx:1.25.timeout30s.csv"
    assert result_paths("/r", "nginx", timeout=0).list == Path("/r/library/nginx:latest")


@pytest.mark.parametrize(
    "image",
    [
        "", "../etc/passwd", "library/../../etc:x", "/abs/path", "a//b", "a/./b", "nginx:../x", "nginx:",
        "nginx:tag/../x", "nginx\0", "ngi\nnx", "Nginx", "docker/Docker", "-docker", "a/b/", ".",
        "nginx@sha256:abc", f"nginx@md5:{'0' * 32}", "0123456789abcdef" * 4, "name:" + "t" * 129,
        "a/" + "b" * 260, "[fe80::1%eth0]:5000/debian", "nginx:tag with space", "\u00e9cole",
    ],
)
def test_bad_names_never_escape_persist_dir(image: str) -> None:
    with pytest.raises(ImageRefError):
        result_paths("/opt/nri/optimizer/results", image)


def test_relative_persist_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert result_paths("results", "nginx").list == tmp_path / "results/library/nginx:latest"


def test_parsed_reference_parts() -> None:
    ref = parse_image_ref("registry.local:5000/team/web:v2")
    assert (ref.domain, ref.path, ref.name, ref.base, ref.tag, ref.digest) == (
        "registry.local:5000", "team/web", "registry.local:5000/team/web", "web", "v2", "")
    assert str(parse_image_ref("nginx")) == "docker.io/library/nginx:latest"
    assert str(parse_image_ref(f"nginx@{DIGEST}")) == f"docker.io/library/nginx@{DIGEST}"
