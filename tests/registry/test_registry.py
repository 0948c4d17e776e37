"""Lists attached to images in a real registry (distribution 2.8: no referrers API, tag schema)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from nydus_top.lists.files import load_list, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.registry import artifacts as registry
from nydus_top.registry.artifacts import Client, RegistryError, parse_reference

from .conftest import LocalRegistry


def _list(tmp_path: Path, name: str, paths: list[str], image: str, node: str) -> Path:
    target = tmp_path / name
    save_list([ListedFile(p, 10 * i, 100 * i) for i, p in enumerate(paths)], target,
              meta=ListMeta(image=image, node=node, created=f"2026-12-01T10:00:0{len(paths)}Z"))
    return target


def test_references_must_name_their_registry() -> None:
    assert parse_reference("127.0.0.1:5000/team/app:1") == registry.Reference("127.0.0.1:5000", "team/app", "1")
    assert parse_reference("localhost/app@sha256:" + "a" * 64).digest == "sha256:" + "a" * 64
    for bad in ("app:1", "team/app:1", "127.0.0.1:5000/app", "reg.example/UPPER:1"):
        with pytest.raises(RegistryError):
            parse_reference(bad)


def test_push_from_two_nodes_then_pull_both(tmp_path: Path, local_registry: LocalRegistry,
                                            pushed_image: tuple[str, str]) -> None:
    ref, digest = pushed_image
    image = parse_reference(ref)
    client = Client(local_registry.host, plain_http=True)
    one = _list(tmp_path, "one", ["/bin/app", "/etc/app.conf"], ref, "node-a")
    two = _list(tmp_path, "two", ["/bin/app", "/lib/x.so", "/etc/app.conf"], ref, "node-b")
    pushed = [registry.push_list(client, image, registry.list_files(p), {registry.ANNOTATION_NODE: node,
                                 registry.ANNOTATION_CREATED: f"2026-12-01T10:00:0{n}Z"})
              for n, (p, node) in enumerate(((one, "node-a"), (two, "node-b")))]
    assert {p.subject for p in pushed} == {digest}
    # The referrers tag schema index lists both artifacts, with our artifact type.
    tag = requests.get(f"http://{local_registry.host}/v2/{image.repository}/manifests/sha256-{digest[7:]}", timeout=30,
                       headers={"Accept": registry.INDEX})
    index = tag.json()
    assert [m["digest"] for m in index["manifests"]] == [p.artifact for p in pushed]
    assert {m["artifactType"] for m in index["manifests"]} == {registry.ARTIFACT_TYPE}
    attached = registry.pull_lists(client, image)
    assert [a.annotations[registry.ANNOTATION_NODE] for a in attached] == ["node-a", "node-b"]
    assert attached[1].files[""] == two.read_bytes() and attached[1].files[".csv"] == Path(f"{two}.csv").read_bytes()
    out = tmp_path / "pulled"
    out.mkdir()
    written = [registry.write_pulled(out, a)[0] for a in attached]
    loaded = load_list(written[0])
    assert [e.path for e in loaded.entries] == ["/bin/app", "/etc/app.conf"]
    assert loaded.meta is not None and loaded.meta.image == ref


def test_pushing_the_same_list_twice_lists_it_once(tmp_path: Path, local_registry: LocalRegistry,
                                                   pushed_image: tuple[str, str]) -> None:
    ref, digest = pushed_image
    client = Client(local_registry.host, plain_http=True)
    listing = _list(tmp_path, "same", ["/only/once"], ref, "node-c")
    annotations = {registry.ANNOTATION_NODE: "node-c", registry.ANNOTATION_CREATED: "2026-12-01T11:00:00Z"}
    first = registry.push_list(client, parse_reference(ref), registry.list_files(listing), annotations)
    second = registry.push_list(client, parse_reference(ref), registry.list_files(listing), annotations)
    assert first.artifact == second.artifact
    entries, api = client.referrers(parse_reference(ref).repository, digest)
    assert not api and [e.digest for e in entries].count(first.artifact) == 1


def test_a_missing_image_is_one_line(local_registry: LocalRegistry, tmp_path: Path) -> None:
    client = Client(local_registry.host, plain_http=True)
    with pytest.raises(RegistryError, match="image .*team/none:1: registry answered 404") as err:
        client.resolve(parse_reference(f"{local_registry.host}/team/none:1"))
    assert "\n" not in str(err.value)


def test_nothing_listening_is_one_line_without_retries() -> None:
    client = Client("127.0.0.1:9", plain_http=True, timeout=2)
    with pytest.raises(RegistryError, match="127.0.0.1:9") as err:
        client.resolve(parse_reference("127.0.0.1:9/team/app:1"))
    assert "\n" not in str(err.value)


def test_a_tampered_blob_is_refused(local_registry: LocalRegistry, pushed_image: tuple[str, str]) -> None:
    client = Client(local_registry.host, plain_http=True)
    real = client.put_blob("team/app", b"payload", "application/octet-stream")
    lying = registry.Descriptor(real.media_type, registry.digest_of(b"other"), real.size)
    with pytest.raises(RegistryError, match="404|does not match"):
        client.get_blob("team/app", lying)
    with pytest.raises(RegistryError, match="over"):
        client.get_blob("team/app", real, limit=3)


def test_upload_locations_outside_the_repository_are_refused() -> None:
    assert registry._upload_path("/v2/team/app/blobs/uploads/abc?x=1", "r:5000", "team/app") == "blobs/uploads/abc?x=1"
    assert registry._upload_path("http://r:5000/v2/team/app/blobs/uploads/u", "r:5000", "team/app") == "blobs/uploads/u"
    for bad in ("http://evil:5000/v2/team/app/blobs/uploads/u", "/v2/other/blobs/uploads/u", "/v2/team/app/../x"):
        with pytest.raises(RegistryError):
            registry._upload_path(bad, "r:5000", "team/app")
    assert json.loads(registry._canonical({"b": 1, "a": [1]})) == {"a": [1], "b": 1}
