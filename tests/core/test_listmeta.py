"""The list identity file: round trip, tolerant reading, and its place beside the pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import load_list, save_list
from nydus_top.lists.meta import ListMeta, MetaError
from nydus_top.model.records import ListedFile


def test_round_trip_keeps_every_field() -> None:
    meta = ListMeta(image="registry.example:5000/team/app:1.2", digest="sha256:" + "a" * 64, container="app",
                    container_id="c1", pod="ns/app-0", node="n1", kernel="6.18.0", created="2026-12-01T00:00:00Z",
                    complete=False, incomplete="mark was late", files=3, runs=("r1", "r2"))
    assert listmeta.decode(listmeta.encode(meta)) == meta


def test_unknown_keys_are_ignored_and_wrong_types_refused() -> None:
    data = json.loads(listmeta.encode(ListMeta(image="a:1")))
    data["future"] = {"x": 1}
    assert listmeta.decode(json.dumps(data).encode()).image == "a:1"
    for key, bad in (("complete", "yes"), ("files", True), ("image", 3), ("runs", [1])):
        with pytest.raises(MetaError, match=key):
            listmeta.decode(json.dumps({**data, key: bad}).encode(), name="m.json")


@pytest.mark.parametrize("data", [b"", b"[]", b"{}", b'{"schema": 2}', b"\xff"])
def test_not_metadata_is_one_line(data: bytes) -> None:
    with pytest.raises(MetaError) as err:
        listmeta.decode(data, name="m.json")
    assert "\n" not in str(err.value) and str(err.value).startswith("m.json: ")


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "l.nydus-top.json").write_bytes(b" " * (listmeta.MAX_BYTES + 1))
    with pytest.raises(MetaError, match="larger than"):
        listmeta.read(tmp_path / "l")


def test_saved_beside_the_pair_and_read_back_from_either(tmp_path: Path) -> None:
    target = tmp_path / "app:1"
    result = save_list([ListedFile("/bin/app", 1, 2), ListedFile("/etc/app", 3, 4)], target,
                       meta=ListMeta(image="registry.example:5000/team/app:1"))
    meta_path = tmp_path / "app:1.nydus-top.json"
    assert meta_path in result.paths
    for opened in (target, tmp_path / "app:1.csv"):
        loaded = load_list(opened)
        assert loaded.meta is not None and loaded.meta.image == "registry.example:5000/team/app:1"
        assert loaded.meta.files == 2
    # The optimizer-compatible pair is exactly what it is without metadata.
    plain = tmp_path / "plain"
    save_list([ListedFile("/bin/app", 1, 2), ListedFile("/etc/app", 3, 4)], plain)
    assert plain.read_bytes() == target.read_bytes()
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "app:1.csv").read_bytes()
    assert load_list(plain).meta is None


def test_bad_metadata_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    save_list([ListedFile("/x")], tmp_path / "l")
    (tmp_path / "l.nydus-top.json").write_text("{")
    loaded = load_list(tmp_path / "l")
    assert loaded.meta is None and [w for w in loaded.warnings if "list identity unknown" in w]


def test_with_origin_fills_only_what_is_missing() -> None:
    meta = ListMeta(image="a:1", node="given").with_origin()
    assert meta.node == "given" and meta.kernel and meta.created.endswith("Z")
