"""Short image names at their edges: registry ports and digests, bare references, the "and N
more" of a long list, and run metadata that is not UTF-8 or exactly at its size limit. Written to
kill the mutants scripts/mutation found surviving (issue 18 item 21); each asserts documented
behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.lists import meta as listmeta
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from nydus_top.runs.names import MAX_LISTED, UnknownImageError, images_here, matches, resolve_image

DIGEST = "sha256:" + "ab" * 32


def test_a_registry_port_is_not_a_tag() -> None:
    here = ["localhost:5000/tools/app:1", "nydus-top.local/demo:1"]
    assert resolve_image("localhost:5000/tools/app", here) == "localhost:5000/tools/app:1"


def test_a_name_without_a_version_matches_a_reference_by_digest() -> None:
    assert matches("demo", f"nydus-top.local/demo@{DIGEST}")
    assert matches("nydus-top.local/demo", f"nydus-top.local/demo@{DIGEST}")
    assert not matches("demo", f"nydus-top.local/demo2@{DIGEST}")


@pytest.mark.parametrize("candidate", ["app:1", "app", f"app@{DIGEST}"])
def test_a_name_without_a_version_matches_a_bare_reference(candidate: str) -> None:
    assert matches("app", candidate)
    assert not matches("ap", candidate) and not matches("1", candidate)


def test_and_n_more_only_when_there_are_more() -> None:
    exactly = [f"host.example/app{n:02d}:1" for n in range(MAX_LISTED)]
    with pytest.raises(UnknownImageError) as unknown:
        resolve_image("zzz:1", exactly)
    assert str(unknown.value).endswith(f"{exactly[-1]})")
    with pytest.raises(UnknownImageError) as unknown:
        resolve_image("zzz:1", [*exactly, "host.example/app99:1"])
    assert str(unknown.value).endswith(f"{exactly[-1]} and 1 more)")


def save(persist: Path, image: str, when: int) -> Path:
    runstore.save_run(persist, [ListedFile("/bin/sh", 1, 0)], ListMeta(image=image, container="c"), when=when)
    return next(runstore.image_dir(persist, image).glob("*.nydus-top.json"))


def test_metadata_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    save(tmp_path, "a.example/ok:1", 1_700_000_000)
    bad = save(tmp_path, "a.example/bad:1", 1_700_000_001)
    bad.write_bytes(b'{"image": "a.example/bad:1\xff"}')
    assert images_here(tmp_path) == ["a.example/ok:1"]


def test_metadata_of_exactly_max_bytes_is_read_and_one_more_is_not(tmp_path: Path) -> None:
    for n, image in enumerate(["a.example/max:1", "a.example/over:1"]):
        path = save(tmp_path, image, 1_700_000_000 + n)
        data = path.read_bytes().rstrip()  # ends in '}': a byte short is not JSON
        padded = b" " * (listmeta.MAX_BYTES - len(data) + n) + data  # leading blanks: truncating breaks it
        path.write_bytes(padded)
        assert len(padded) == listmeta.MAX_BYTES + n
    assert images_here(tmp_path) == ["a.example/max:1"]
