"""A registry's answers at the edges of what we accept (nydus_top/registry/artifacts.py), asked
through the client directly of a misbehaving registry on 127.0.0.1: descriptors, digests, sizes
exactly at their caps and one byte over, the referrers index's length, which artifacts are lists
and in which order, the names pulled lists get; and the files a push reads. Written to kill the
mutants scripts/mutation found surviving (issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nydus_top.registry import artifacts as registry
from tests.hostile.registry_peer import (
    ARTIFACT,
    INDEX,
    MANIFEST,
    PLAIN,
    HostileRegistry,
    digest,
    hostile_registry,
    short_registry,
)

REPO = "team/app"
GOOD = {"mediaType": PLAIN, "digest": "sha256:" + "a" * 64, "size": 7}


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with hostile_registry() as peer:
        yield peer


@pytest.fixture
def client(hostile: HostileRegistry) -> Iterator[registry.Client]:
    made = registry.Client(hostile.host, plain_http=True)
    yield made
    made.close()


# ---------------------------------------------------------------- descriptors


@pytest.mark.parametrize("raw", [
    None, [GOOD], {**GOOD, "mediaType": 7}, {**GOOD, "digest": 7}, {**GOOD, "digest": "sha256:" + "A" * 64},
    {**GOOD, "digest": "sha512:" + "a" * 64}, {**GOOD, "digest": "sha256:" + "a" * 63},
    {**GOOD, "digest": "sha256:" + "a" * 64 + "\n"}, {**GOOD, "size": "7"}, {**GOOD, "size": -1},
    {**GOOD, "size": 7.0}, {"digest": GOOD["digest"], "size": 7}, {"mediaType": PLAIN, "size": 7},
    {"mediaType": PLAIN, "digest": GOOD["digest"]},
])
def test_what_is_no_descriptor_is_none(raw: Any) -> None:
    assert registry._descriptor(raw) is None


def test_a_descriptor_keeps_string_annotations_and_artifact_type_only() -> None:
    assert registry._descriptor({**GOOD, "size": 0}) == registry.Descriptor(PLAIN, GOOD["digest"], 0)
    full = registry._descriptor({**GOOD, "artifactType": ARTIFACT, "annotations": {"a": "b"}})
    assert full == registry.Descriptor(PLAIN, GOOD["digest"], 7, ARTIFACT, {"a": "b"})
    for odd_annotations in ({"a": 1}, ["a"], "a"):
        odd = registry._descriptor({**GOOD, "artifactType": 7, "annotations": odd_annotations})
        assert odd == registry.Descriptor(PLAIN, GOOD["digest"], 7, "", None)


# ---------------------------------------------------------------- manifests and blobs


def test_an_image_resolves_to_its_manifest_descriptor(hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    body = hostile.answers[f"/v2/{REPO}/manifests/1"][2]
    hostile.put(f"/v2/{REPO}/manifests/2", body, MANIFEST + "; charset=utf-8")
    hostile.put(f"/v2/{REPO}/manifests/3", body, "")
    for tag in ("1", "2", "3"):
        assert client.resolve(registry.parse_reference(f"{hostile.host}/{REPO}:{tag}")) == registry.Descriptor(
            MANIFEST, subject, len(body))
    pinned = registry.parse_reference(f"{hostile.host}/{REPO}@{subject}")
    assert client.resolve(pinned) == registry.Descriptor(MANIFEST, subject, len(body))


def test_an_image_pinned_by_digest_must_have_that_digest(hostile: HostileRegistry, client: registry.Client) -> None:
    hostile.image(REPO, "1")
    other = "sha256:" + "b" * 64
    hostile.put(f"/v2/{REPO}/manifests/{other}", hostile.answers[f"/v2/{REPO}/manifests/1"][2], MANIFEST)
    ref = registry.parse_reference(f"{hostile.host}/{REPO}@{other}")
    with pytest.raises(registry.RegistryError) as caught:
        client.resolve(ref)
    actual = digest(hostile.answers[f"/v2/{REPO}/manifests/1"][2])
    assert str(caught.value) == f"image {ref}: the registry sent a manifest with digest {actual}"


def test_an_image_index_resolves_with_its_media_type(hostile: HostileRegistry, client: registry.Client) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()
    hostile.put(f"/v2/{REPO}/manifests/multi", body, INDEX)
    ref = registry.parse_reference(f"{hostile.host}/{REPO}:multi")
    assert client.resolve(ref) == registry.Descriptor(INDEX, digest(body), len(body))


def test_a_missing_image_is_one_line_with_the_status(hostile: HostileRegistry, client: registry.Client) -> None:
    ref = registry.parse_reference(f"{hostile.host}/{REPO}:9")
    with pytest.raises(registry.RegistryError, match=rf"^image {ref}: registry answered 404$"):
        client.resolve(ref)
    hostile.put(f"/v2/{REPO}/manifests/9", b'{"errors": [{"message": "out of order"}]}', "application/json", status=500)
    with pytest.raises(registry.RegistryError, match=rf"^image {ref}: registry answered 500 out of order$"):
        client.resolve(ref)


def test_a_manifest_by_digest_is_checked_by_tag_it_is_not(hostile: HostileRegistry, client: registry.Client) -> None:
    body = b'{"schemaVersion": 2}'
    hostile.put(f"/v2/{REPO}/manifests/{digest(body)}", body, INDEX + ";x=1")
    hostile.put(f"/v2/{REPO}/manifests/tag", body, INDEX)
    assert client.get_manifest(REPO, digest(body), INDEX) == (body, INDEX)
    assert client.get_manifest(REPO, "tag", INDEX) == (body, INDEX)
    assert client.get_manifest(REPO, "missing", INDEX) is None
    hostile.put(f"/v2/{REPO}/manifests/untyped", body, "")
    assert client.get_manifest(REPO, "untyped", INDEX) == (body, "")  # no Content-Type: no media type
    wrong = "sha256:" + "c" * 64
    hostile.put(f"/v2/{REPO}/manifests/{wrong}", body, INDEX)
    with pytest.raises(registry.ContentError, match=rf"^manifest {REPO}@{wrong}: content does not match its digest$"):
        client.get_manifest(REPO, wrong, INDEX)
    hostile.put(f"/v2/{REPO}/manifests/broken", b'{"errors": [{"message": "down"}]}', "application/json", status=500)
    with pytest.raises(registry.RegistryError, match=rf"^manifest {REPO}:broken: registry answered 500 down$"):
        client.get_manifest(REPO, "broken", INDEX)


def test_a_manifest_is_read_to_its_descriptors_size_and_never_past_max_manifest_bytes(
        hostile: HostileRegistry, client: registry.Client) -> None:
    body = b"{" + b" " * (registry.MAX_MANIFEST_BYTES - 2) + b"}"
    hostile.put(f"/v2/{REPO}/manifests/{digest(body)}", body, MANIFEST)
    assert client.get_manifest(REPO, digest(body), MANIFEST, limit=len(body)) == (body, MANIFEST)
    with pytest.raises(registry.ContentError, match=f"answer larger than {len(body) - 1} bytes$"):
        client.get_manifest(REPO, digest(body), MANIFEST, limit=len(body) - 1)
    over = body + b" "
    hostile.put(f"/v2/{REPO}/manifests/{digest(over)}", over, MANIFEST)
    with pytest.raises(registry.ContentError, match=f"answer larger than {registry.MAX_MANIFEST_BYTES} bytes$"):
        client.get_manifest(REPO, digest(over), MANIFEST, limit=len(over))  # a descriptor may say more


def test_a_blob_at_its_limit_is_fetched_one_byte_over_is_not_asked_for(
        hostile: HostileRegistry, client: registry.Client) -> None:
    blob = b"/bin/app\n"
    hostile.put(f"/v2/{REPO}/blobs/{digest(blob)}", blob)
    layer = registry.Descriptor(PLAIN, digest(blob), len(blob))
    assert client.get_blob(REPO, layer, limit=len(blob)) == blob
    assert client.get_blob(REPO, layer) == blob
    asked = len(hostile.asked)
    with pytest.raises(registry.ContentError) as caught:
        client.get_blob(REPO, layer, limit=len(blob) - 1)
    assert str(caught.value) == f"blob {digest(blob)} of {REPO}: {len(blob)} bytes is over {len(blob) - 1}"
    assert len(hostile.asked) == asked


def test_answers_compressed_for_the_transfer_are_read_decompressed(hostile: HostileRegistry,
                                                                    client: registry.Client) -> None:
    blob = b"/bin/app\n" * 1000
    hostile.put(f"/v2/{REPO}/blobs/{digest(blob)}", blob)
    hostile.gzipped.add(f"/v2/{REPO}/blobs/{digest(blob)}")
    assert client.get_blob(REPO, registry.Descriptor(PLAIN, digest(blob), len(blob))) == blob


def test_a_blob_the_registry_fails_or_falsifies_is_one_line(hostile: HostileRegistry, client: registry.Client) -> None:
    blob = b"/bin/app\n"
    layer = registry.Descriptor(PLAIN, digest(blob), len(blob))
    with pytest.raises(registry.ContentError) as caught:
        client.get_blob(REPO, layer)
    assert str(caught.value) == f"blob {digest(blob)} of {REPO}: registry answered 404"
    hostile.put(f"/v2/{REPO}/blobs/{digest(blob)}", b'{"errors": [{"code": "DENIED"}]}', status=500)
    with pytest.raises(registry.ContentError) as caught:
        client.get_blob(REPO, registry.Descriptor(PLAIN, digest(blob), 100))
    assert str(caught.value) == f"blob {digest(blob)} of {REPO}: registry answered 500 DENIED"
    hostile.put(f"/v2/{REPO}/blobs/{digest(blob)}", b"/bin/evil")
    with pytest.raises(registry.ContentError) as caught:
        client.get_blob(REPO, layer)
    assert str(caught.value) == f"blob {digest(blob)} of {REPO}: content does not match its digest"


def test_an_upload_location_elsewhere_is_refused_in_one_line_naming_its_start() -> None:
    location = "http://evil:5000/v2/team/app/blobs/uploads/" + "u" * 300
    with pytest.raises(registry.RegistryError) as caught:
        registry._upload_path(location, "r:5000", REPO)
    assert str(caught.value) == f"registry gave an upload location outside r:5000/{REPO}: {location[:200]!r}"


def test_a_manifest_or_blob_cut_short_is_one_line_naming_the_request() -> None:
    with short_registry() as host:  # promises 100 bytes, sends 10
        client = registry.Client(host, plain_http=True, timeout=5)
        with pytest.raises(registry.RegistryError) as blob:
            client.get_blob(REPO, registry.Descriptor(PLAIN, GOOD["digest"], 100))
        with pytest.raises(registry.RegistryError) as manifest:
            client.get_manifest(REPO, "1", MANIFEST)
    assert str(blob.value).startswith(f"GET http://{host}/v2/{REPO}/blobs/{GOOD['digest']}: ")
    assert str(manifest.value).startswith(f"GET http://{host}/v2/{REPO}/manifests/1: ")


# ---------------------------------------------------------------- referrers


def _index(count: int) -> bytes:
    entry = {"mediaType": MANIFEST, "digest": "sha256:" + "d" * 64, "size": 1, "artifactType": ARTIFACT}
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry] * count}).encode()


def test_a_referrers_index_of_max_referrers_entries_is_read_one_more_is_refused() -> None:
    assert len(registry._index_entries(_index(registry.MAX_REFERRERS), "it")) == registry.MAX_REFERRERS
    with pytest.raises(registry.RegistryError, match=f"^it: more than {registry.MAX_REFERRERS} entries$"):
        registry._index_entries(_index(registry.MAX_REFERRERS + 1), "it")


@pytest.mark.parametrize("body", [b'{"manifests": {}}', b"{}", b'{"manifests": "x"}'])
def test_what_is_no_image_index_is_one_line(body: bytes) -> None:
    with pytest.raises(registry.RegistryError, match="^it: not an image index$"):
        registry._index_entries(body, "it")


def test_a_referrers_answer_that_is_no_json_object_is_one_line_naming_it() -> None:
    with pytest.raises(registry.RegistryError, match="^referrers of it: not a JSON object$"):
        registry._index_entries(b"[]", "referrers of it")


def test_entries_that_are_no_descriptors_are_left_out() -> None:
    body = json.dumps({"manifests": [7, {"mediaType": MANIFEST}, GOOD]}).encode()
    assert registry._index_entries(body, "it") == [registry.Descriptor(PLAIN, GOOD["digest"], 7)]


@pytest.mark.parametrize("body", [b"[]", b"7", b"not json", b"[" * 100_000])
def test_what_is_no_json_object_raises_the_error_asked_for(body: bytes) -> None:
    with pytest.raises(registry.ContentError, match="^it: not a JSON object$"):
        registry._json_object(body, "it", registry.ContentError)
    with pytest.raises(registry.RegistryError, match="^it: not a JSON object$"):
        registry._json_object(body, "it")


# ---------------------------------------------------------------- lists attached to an image


def _manifest(layers: list[dict[str, Any]], annotations: Any = None, artifact: Any = ARTIFACT) -> dict[str, Any]:
    return {"artifactType": artifact, "layers": layers, "annotations": annotations}


def test_an_artifact_is_a_list_only_with_our_type_and_a_plain_list() -> None:
    plain = {**GOOD}
    csv = {**GOOD, "mediaType": registry.LAYERS[".csv"], "digest": "sha256:" + "c" * 64}
    listed = registry._listed("art", _manifest([7, {"mediaType": "other", "digest": GOOD["digest"], "size": 1},
                                                plain, {**plain, "digest": "sha256:" + "e" * 64}, csv]))
    assert listed is not None and listed.artifact == "art" and listed.annotations == {}
    assert listed.layers == {"": registry.Descriptor(PLAIN, GOOD["digest"], 7),  # the first plain list wins
                             ".csv": registry.Descriptor(registry.LAYERS[".csv"], "sha256:" + "c" * 64, 7)}
    assert registry._listed("art", _manifest([csv])) is None
    assert registry._listed("art", _manifest([plain], artifact="application/other")) is None
    assert registry._listed("art", {"artifactType": ARTIFACT, "layers": {"0": plain}}) is None


def test_only_string_annotations_we_use_are_kept_each_clipped() -> None:
    long = "x" * (registry.MAX_ANNOTATION_CHARS + 1)
    listed = registry._listed("art", _manifest([GOOD], {registry.ANNOTATION_CREATED: long,
                                                        registry.ANNOTATION_NODE: 7, registry.ANNOTATION_IMAGE: "i",
                                                        "other": "o"}))
    assert listed is not None
    assert listed.annotations == {registry.ANNOTATION_CREATED: long[:-1], registry.ANNOTATION_IMAGE: "i"}
    exact = "y" * registry.MAX_ANNOTATION_CHARS
    at_limit = registry._listed("art", _manifest([GOOD], {registry.ANNOTATION_NODE: exact}))
    assert at_limit is not None and at_limit.annotations == {registry.ANNOTATION_NODE: exact}


def _attach(hostile: HostileRegistry, subject: str, blob: bytes, created: str, **kwargs: Any) -> dict[str, Any]:
    return hostile.artifact(REPO, subject, blob, created=created, **kwargs)


def _items(client: registry.Client, hostile: HostileRegistry, **limits: int) -> list[tuple[str, str]]:
    """(artifact, "files" or why skipped) of each item a pull yields, in order."""
    image = registry.parse_reference(f"{hostile.host}/{REPO}:1")
    return [(item.artifact, item.files[""].decode() if isinstance(item, registry.Attached) else item.why)
            for item in registry.iter_lists(client, image, **limits)]


def test_lists_come_oldest_first_then_by_digest_and_other_artifacts_are_passed_over(
        hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    late = _attach(hostile, subject, b"/bin/late\n", "2024-01-03T00:00:00Z")
    early = _attach(hostile, subject, b"/bin/early\n", "2024-01-01T00:00:00Z")
    twins = sorted((_attach(hostile, subject, f"/bin/twin{n}\n".encode(), "2024-01-02T00:00:00Z")
                    for n in range(2)), key=lambda d: d["digest"])
    untyped = {**_attach(hostile, subject, b"/bin/untyped\n", "2024-01-04T00:00:00Z"), "artifactType": ""}
    other = {**_attach(hostile, subject, b"/bin/other\n", "2024-01-00T00:00:00Z"), "artifactType": "application/sig"}
    hostile.referrers(REPO, subject, [late, other, untyped, twins[1], early, twins[0]])
    items = _items(client, hostile)
    assert [a for a, _ in items] == [early["digest"], twins[0]["digest"], twins[1]["digest"], late["digest"],
                                     untyped["digest"]]
    assert "/bin/other\n" not in [files for _, files in items]


def test_a_list_without_a_creation_time_comes_first(hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    dated = _attach(hostile, subject, b"/bin/dated\n", "2024-01-01T00:00:00Z")
    blob = b"/bin/undated\n"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT,
                           "layers": [{"mediaType": PLAIN, "digest": digest(blob), "size": len(blob)}]}).encode()
    undated = _attach(hostile, subject, blob, "", body=manifest)
    hostile.referrers(REPO, subject, [dated, undated])
    assert _items(client, hostile) == [(undated["digest"], "/bin/undated\n"), (dated["digest"], "/bin/dated\n")]


def test_an_unusable_artifact_is_skipped_and_the_next_ones_still_come(
        hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    no_json = _attach(hostile, subject, b"/bin/a\n", "2024-01-01T00:00:00Z", body=b"not json")
    no_blob = _attach(hostile, subject, b"/bin/b\n", "2024-01-02T00:00:00Z")
    del hostile.answers[f"/v2/{REPO}/blobs/{digest(b'/bin/b' + bytes([10]))}"]
    good = _attach(hostile, subject, b"/bin/c\n", "2024-01-03T00:00:00Z")
    hostile.referrers(REPO, subject, [no_json, no_blob, good])
    assert _items(client, hostile) == [
        (no_json["digest"], f"manifest {REPO}@{no_json['digest']}: not a JSON object"),
        (no_blob["digest"], f"blob {digest(b'/bin/b' + bytes([10]))} of {REPO}: registry answered 404"),
        (good["digest"], "/bin/c\n")]


def test_a_pull_stops_at_max_lists_and_max_bytes_exactly(hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    entries = [_attach(hostile, subject, f"/bin/list{n}\n".encode(), f"2024-01-0{n}T00:00:00Z") for n in (1, 2, 3)]
    hostile.referrers(REPO, subject, entries)  # 11 bytes each
    assert [a for a, _ in _items(client, hostile, max_lists=3, max_bytes=33)] == [e["digest"] for e in entries]
    assert _items(client, hostile, max_lists=2)[2] == ("", "pull limit of 2 lists (max_pull_lists) reached: "
                                                           "1 more lists not fetched")
    assert _items(client, hostile, max_bytes=32)[2] == ("", "pull limit of 32 bytes (max_pull_bytes) reached: "
                                                            "1 more lists not fetched")
    assert _items(client, hostile, max_lists=0) == [("", "pull limit of 0 lists (max_pull_lists) reached: "
                                                         "3 more lists not fetched")]


def test_only_lists_fetched_count_toward_max_lists_and_only_files_fetched_toward_max_bytes(
        hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    same = [_attach(hostile, subject, b"/bin/same\n", f"2024-01-0{n}T00:00:00Z", annotations={"n": str(n)})
            for n in (1, 2)]  # 10 bytes, fetched once
    bad = _attach(hostile, subject, b"relative\n", "2024-01-03T00:00:00Z")  # 9 bytes fetched, then refused
    last = _attach(hostile, subject, b"/bin/last\n", "2024-01-04T00:00:00Z")
    hostile.referrers(REPO, subject, [*same, bad, last])
    assert _items(client, hostile, max_lists=2, max_bytes=29) == [
        (same[0]["digest"], "/bin/same\n"), (same[1]["digest"], f"the same files as {same[0]['digest']}"),
        (bad["digest"], "list:1: not an absolute path: not a prefetch list"), (last["digest"], "/bin/last\n")]


def test_an_artifact_deleted_since_it_was_listed_is_passed_over(hostile: HostileRegistry,
                                                                client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    gone = _attach(hostile, subject, b"/bin/gone\n", "2024-01-01T00:00:00Z")
    kept = _attach(hostile, subject, b"/bin/kept\n", "2024-01-02T00:00:00Z")
    del hostile.answers[f"/v2/{REPO}/manifests/{gone['digest']}"]
    hostile.referrers(REPO, subject, [gone, kept])
    assert _items(client, hostile) == [(kept["digest"], "/bin/kept\n")]


def test_a_manifest_is_asked_for_with_its_descriptors_size(hostile: HostileRegistry, client: registry.Client) -> None:
    subject = hostile.image(REPO, "1")
    entry = _attach(hostile, subject, b"/bin/app\n", "2024-01-01T00:00:00Z")
    hostile.referrers(REPO, subject, [{**entry, "size": entry["size"] - 1}])
    ((artifact, why),) = _items(client, hostile)
    assert artifact == entry["digest"] and why.endswith(f"answer larger than {entry['size'] - 1} bytes")


# ---------------------------------------------------------------- names of pulled lists


@pytest.mark.parametrize(("annotations", "name"), [
    ({registry.ANNOTATION_CREATED: "2024-01-02T03:04:05Z", registry.ANNOTATION_NODE: "node-1"},
     "20240102T030405.000000Z-node-1_0123456789ab"),
    ({registry.ANNOTATION_CREATED: "2024-01-02T03:04:05.999999Z/../x",
      registry.ANNOTATION_NODE: "../\x1b[2J" + "n" * 50},
     "20240102T030405.000000Z-_____2J" + "n" * 33 + "_0123456789ab"),
    ({registry.ANNOTATION_CREATED: "2024"}, "20240000T000000.000000Z-node_0123456789ab"),
    ({registry.ANNOTATION_NODE: ""}, "00000000T000000.000000Z-node_0123456789ab"),
])
def test_a_pulled_list_is_named_like_a_run_with_only_safe_characters(annotations: dict[str, str], name: str) -> None:
    attached = registry.Attached("sha256:0123456789abcdef" + "0" * 48, annotations, {"": b"/x\n"})
    assert registry.run_name_of(attached) == name


# ---------------------------------------------------------------- files pushed


def test_the_files_of_a_list_are_read_from_its_csv_path_too(tmp_path: Path) -> None:
    listing = tmp_path / "app:1"
    listing.write_bytes(b"/bin/app\n")
    Path(f"{listing}.csv").write_bytes(b"path,size,elapsed\n/bin/app,1,1\n")
    files = {"": b"/bin/app\n", ".csv": b"path,size,elapsed\n/bin/app,1,1\n"}
    assert registry.list_files(listing) == files
    assert registry.list_files(f"{listing}.csv") == files


def test_a_list_file_at_max_blob_bytes_is_pushed_one_byte_more_is_not(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "app:1"
    listing.write_bytes(b"/bin/app\n")
    monkeypatch.setattr(registry, "MAX_BLOB_BYTES", 9)
    assert registry.list_files(listing) == {"": b"/bin/app\n"}
    monkeypatch.setattr(registry, "MAX_BLOB_BYTES", 8)
    with pytest.raises(registry.RegistryError) as caught:
        registry.list_files(listing)
    assert str(caught.value) == f"{listing}: larger than 8 bytes"


def test_a_list_without_its_plain_list_or_not_a_list_is_not_pushed(tmp_path: Path) -> None:
    listing = tmp_path / "app:1"
    Path(f"{listing}.csv").write_bytes(b"path,size,elapsed\n/bin/app,1,1\n")
    with pytest.raises(registry.RegistryError) as caught:
        registry.list_files(listing)
    assert str(caught.value) == f"cannot read {listing}: no such file"
    listing.write_bytes(b"")
    with pytest.raises(registry.RegistryError) as caught:
        registry.list_files(listing)
    assert str(caught.value) == f"{listing}: an empty list: not pushed"


def test_a_list_file_that_cannot_be_read_is_one_line_with_the_reason(tmp_path: Path) -> None:
    listing = tmp_path / "app:1"
    listing.mkdir()
    with pytest.raises(registry.RegistryError) as caught:
        registry.list_files(listing)
    assert str(caught.value) == f"cannot read {listing}: Is a directory"
    listing.rmdir()
    with socket.socket(socket.AF_UNIX) as sock:  # a UNIX socket cannot be opened at all (ENXIO)
        sock.bind(os.fspath(listing))
        with pytest.raises(registry.RegistryError) as caught:
            registry.list_files(listing)
    assert str(caught.value) == f"cannot read {listing}: No such device or address"
