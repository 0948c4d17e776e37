"""Short image names: resolved among the full references that have runs here, or refused with
the references they could mean (issue 19, item 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from nydus_top.runs.names import (
    MAX_LISTED,
    AmbiguousImageError,
    UnknownImageError,
    images_here,
    resolve_image,
)

HERE = ["nydus-top.local/demo:1", "nydus-top.local/demo:2", "registry.example:5000/team/app:1",
        "docker.io/library/nginx:latest", "localhost:5000/tools/app:1"]


@pytest.mark.parametrize(("name", "meant"), [
    ("demo:1", "nydus-top.local/demo:1"),
    ("nydus-top.local/demo:2", "nydus-top.local/demo:2"),
    ("team/app:1", "registry.example:5000/team/app:1"),
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:latest", "docker.io/library/nginx:latest"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("tools/app", "localhost:5000/tools/app:1"),
])
def test_an_unambiguous_short_name_means_its_full_reference(name: str, meant: str) -> None:
    assert resolve_image(name, HERE) == meant


@pytest.mark.parametrize(("name", "could"), [
    ("demo", "nydus-top.local/demo:1, nydus-top.local/demo:2"),
    ("app:1", "localhost:5000/tools/app:1, registry.example:5000/team/app:1"),
])
def test_an_ambiguous_name_lists_what_it_could_mean(name: str, could: str) -> None:
    with pytest.raises(AmbiguousImageError) as err:
        resolve_image(name, HERE)
    assert str(err.value) == f"{name} could mean {could}: give the full reference"


@pytest.mark.parametrize("name", ["demo:3", "emo:1", "other.host/demo:1", "app:2"])
def test_a_name_matching_nothing_lists_the_images_with_runs(name: str) -> None:
    with pytest.raises(UnknownImageError) as err:
        resolve_image(name, HERE)
    assert str(err.value).startswith(f"no runs of {name} here (images with runs: docker.io/library/nginx:latest, ")
    with pytest.raises(UnknownImageError, match=r"\(no image has runs\)"):
        resolve_image(name, [])


def test_an_error_names_at_most_max_listed_references() -> None:
    many = [f"host.example/app{n:02d}:1" for n in range(MAX_LISTED + 3)]
    with pytest.raises(AmbiguousImageError) as err:
        resolve_image("host.example/app0", [*many, "host.example/app0:1", "host.example/app0:2"])
    assert "and" not in str(err.value)
    with pytest.raises(UnknownImageError) as unknown:
        resolve_image("zzz:1", many)
    message = str(unknown.value)
    assert message.count("host.example/") == MAX_LISTED and message.endswith(" and 3 more)")


def test_images_here_are_the_full_references_the_runs_name(tmp_path: Path) -> None:
    for n, image in enumerate(["nydus-top.local/demo:1", "registry.example:5000/team/app:1"]):
        runstore.save_run(tmp_path, [ListedFile("/bin/sh", 1, 0)], ListMeta(image=image, container="c"),
                          when=1_700_000_000 + n)
    bare = runstore.image_dir(tmp_path, "other:1") / runstore.run_name("c", 1_700_000_000)
    bare.parent.mkdir(parents=True)
    bare.write_text("/bin/sh\n")  # a run without metadata names no registry: not offered
    assert images_here(tmp_path) == ["nydus-top.local/demo:1", "registry.example:5000/team/app:1"]
    assert images_here(tmp_path / "none") == []


def test_images_here_skips_metadata_that_is_a_fifo_a_symlink_or_not_metadata(tmp_path: Path) -> None:
    for n, image in enumerate(["a.example/fifo:1", "a.example/link:1", "a.example/junk:1", "a.example/ok:1"]):
        runstore.save_run(tmp_path, [ListedFile("/bin/sh", 1, 0)], ListMeta(image=image, container="c"),
                          when=1_700_000_000 + n)
    meta = {image: next(runstore.image_dir(tmp_path, image).glob("*.nydus-top.json"))
            for image in ("a.example/fifo:1", "a.example/link:1", "a.example/junk:1")}
    meta["a.example/fifo:1"].unlink()
    os.mkfifo(meta["a.example/fifo:1"])  # opened as it is, it would block for ever
    target = tmp_path / "elsewhere.json"
    target.write_bytes(meta["a.example/link:1"].read_bytes())
    meta["a.example/link:1"].unlink()
    meta["a.example/link:1"].symlink_to(target)
    meta["a.example/junk:1"].write_text("{not json")
    assert images_here(tmp_path) == ["a.example/ok:1"]
