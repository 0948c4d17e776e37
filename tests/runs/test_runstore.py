"""The run store: every start kept beside the optimizer's pair, bounded by keep_runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.imageref import ImageRefError
from nydus_top.lists.files import load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore

IMAGE = "registry.example:5000/team/app:1.2"


def test_runs_live_under_the_image_and_sort_oldest_first(tmp_path: Path) -> None:
    for n, when in enumerate((1_700_000_002.5, 1_700_000_001.25, 1_700_000_003.0)):
        runstore.save_run(tmp_path, [ListedFile(f"/f{n}", n, n)], ListMeta(image=IMAGE, container=f"app-{n}"),
                          when=when)
    directory = tmp_path / ".nydus-top" / "image-runs" / "registry.example:5000" / "team" / "app:1.2"
    runs = runstore.runs_of(directory)
    assert [r.name for r in runs] == ["20231114T221321.250000Z-app-1", "20231114T221322.500000Z-app-0",
                                      "20231114T221323.000000Z-app-2"]
    loaded = load_list(runs[0])
    assert loaded.entries == (ListedFile("/f1", 1, 1),) and loaded.meta is not None and loaded.meta.image == IMAGE
    # The optimizer-compatible result files are not touched by keeping runs.
    assert not (tmp_path / "team").exists()


def test_keep_drops_the_oldest_with_their_siblings(tmp_path: Path) -> None:
    for n in range(5):
        runstore.save_run(tmp_path, [ListedFile("/x")], ListMeta(image=IMAGE, container="c"), keep=3,
                          when=1_700_000_000 + n)
    directory = runstore.image_dir(tmp_path, IMAGE)
    assert [r.name[:15] for r in runstore.runs_of(directory)] == ["20231114T221322", "20231114T221323",
                                                                  "20231114T221324"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        f"{r.name}{suffix}" for r in runstore.runs_of(directory) for suffix in ("", ".csv", ".nydus-top.json"))


def test_hostile_container_names_stay_one_safe_component(tmp_path: Path) -> None:
    result, _ = runstore.save_run(tmp_path, [ListedFile("/x")], ListMeta(image=IMAGE, container="../../\x1b[2J/etc"),
                               when=1_700_000_000)
    assert result.paths[0].parent == runstore.image_dir(tmp_path, IMAGE)
    assert result.paths[0].name == "20231114T221320.000000Z-________2J_etc"


def test_other_files_in_the_directory_are_not_runs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "20231114T221320.000000Z-c.csv").write_text("x")
    assert runstore.runs_of(tmp_path) == [] and runstore.runs_of(tmp_path / "missing") == []


def test_invalid_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageRefError):
        runstore.save_run(tmp_path, [ListedFile("/x")], ListMeta(image="Bad Image!", container="c"))


@pytest.mark.parametrize(("image", "key"), [
    ("registry.example:5000/team/app:1.2", "registry.example:5000/team/app:1.2"),
    ("nginx", "docker.io/library/nginx:latest"),
    ("localhost/app@sha256:" + "a" * 64, "localhost/app@sha256:" + "a" * 64),
    ("h.local/a/b:1@sha256:" + "b" * 64, "h.local/a/b:1@sha256:" + "b" * 64)])
def test_runs_are_keyed_by_the_full_reference(tmp_path: Path, image: str, key: str) -> None:
    assert runstore.image_dir(tmp_path, image) == tmp_path / ".nydus-top" / "image-runs" / key


def test_two_registries_images_of_one_path_and_tag_never_share_runs(tmp_path: Path) -> None:
    for image in ("good.local/reader:1", "evil.local/reader:1"):
        runstore.save_run(tmp_path, [ListedFile("/x")], ListMeta(image=image, container="c"), when=1_700_000_000)
    good, evil = (runstore.runs_of(runstore.image_dir(tmp_path, i)) for i in ("good.local/reader:1",
                                                                               "evil.local/reader:1"))
    assert len(good) == len(evil) == 1 and good[0].parent != evil[0].parent
    assert load_list(good[0]).meta.image == "good.local/reader:1"  # type: ignore[union-attr]
