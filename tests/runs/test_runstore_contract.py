"""The run store's edges (nydus_top/runs/store.py): run names at their limits, keep=0, saves and
pruning under a symlinked persist_dir, which references are one image, where earlier versions
kept runs. Written to kill the mutants scripts/mutation found surviving (issue 18 item 21); each
asserts documented behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nydus_top.lists.files import ListFileError, load_range_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore

IMAGE = "registry.local:5000/team/app:1"


def test_a_run_named_without_a_time_is_named_at_the_current_time() -> None:
    before = runstore.run_name("c", time.time())
    now = runstore.run_name("c")
    after = runstore.run_name("c", time.time())
    assert before <= now <= after  # the names sort by time: UTC, fixed width


def test_the_container_part_of_a_run_name_is_at_most_64_characters_and_never_empty() -> None:
    assert runstore.run_name("a" * 100, 0) == "19700101T000000.000000Z-" + "a" * 64
    assert runstore.run_name("a" * 64, 0) == "19700101T000000.000000Z-" + "a" * 64
    assert runstore.run_name("", 0) == "19700101T000000.000000Z-container"


def test_keep_zero_still_keeps_the_run_just_saved(tmp_path: Path) -> None:
    for n in range(3):
        runstore.save_run(tmp_path, [ListedFile("/x")], ListMeta(image=IMAGE, container="c"), keep=0,
                          when=1_700_000_000 + n)
    runs = runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))
    assert [r.name for r in runs] == ["20231114T221322.000000Z-c"]


def test_sizes_are_plain_numbers_unless_readable_is_asked_for(tmp_path: Path) -> None:
    meta = ListMeta(image=IMAGE, container="c")
    plain, _ = runstore.save_run(tmp_path, [ListedFile("/x", 1536, 2)], meta, when=1_700_000_000)
    readable, _ = runstore.save_run(tmp_path, [ListedFile("/x", 1536, 2)], meta, readable=True, when=1_700_000_001)
    csv = [Path(f"{result.paths[0]}.csv").read_text().splitlines()[1] for result in (plain, readable)]
    assert csv[0].startswith("/x,1536,") and csv[1].startswith("/x,1.5 KiB,")


@pytest.mark.parametrize(("granularity", "ranges"), [(None, [(0, 1 << 20)]), (0, [(100, 200)]), (4096, [(0, 4096)])])
def test_a_run_with_ranges_keeps_its_range_list_at_the_granularity_asked_for(
        tmp_path: Path, granularity: int | None, ranges: list[tuple[int, int]]) -> None:
    book = RangeBook()
    book.add("/x", 100, 200)
    entries, meta = [ListedFile("/x", 5 << 20, 1)], ListMeta(image=IMAGE, container="c")
    if granularity is None:  # the default: nydus' chunk size
        result, _ = runstore.save_run(tmp_path, entries, meta, ranges=book, when=1_700_000_000)
    else:
        result, _ = runstore.save_run(tmp_path, entries, meta, ranges=book, when=1_700_000_000, granularity=granularity)
    saved = load_range_list(f"{result.paths[0]}.ranges.json").get("/x")
    assert saved is not None and list(saved) == ranges


def test_a_run_without_ranges_has_no_range_list(tmp_path: Path) -> None:
    meta = ListMeta(image=IMAGE, container="c")
    result, _ = runstore.save_run(tmp_path, [ListedFile("/x")], meta, when=1_700_000_000)
    assert sorted(p.name for p in result.paths[0].parent.iterdir()) == [
        "20231114T221320.000000Z-c", "20231114T221320.000000Z-c.csv", "20231114T221320.000000Z-c.nydus-top.json"]


def test_a_run_is_never_saved_through_a_symlink_under_persist_dir(tmp_path: Path) -> None:
    persist, elsewhere = tmp_path / "persist", tmp_path / "elsewhere"
    persist.mkdir()
    elsewhere.mkdir()
    (persist / ".nydus-top").symlink_to(elsewhere)
    with pytest.raises(ListFileError, match=r"\.nydus-top is a symlink"):
        runstore.save_run(persist, [ListedFile("/x")], ListMeta(image=IMAGE, container="c"), when=1_700_000_000)
    assert list(elsewhere.iterdir()) == []


def test_pruning_below_a_symlink_names_what_it_refused_in_one_line(tmp_path: Path) -> None:
    persist, elsewhere = tmp_path / "persist", tmp_path / "elsewhere"
    (persist / ".nydus-top" / "image-runs" / "registry.local:5000").mkdir(parents=True)
    (elsewhere / "app:1").mkdir(parents=True)
    (persist / ".nydus-top" / "image-runs" / "registry.local:5000" / "team").symlink_to(elsewhere)
    directory = runstore.image_dir(persist, IMAGE)
    with pytest.raises(ListFileError) as caught:
        runstore.prune(directory, 1, persist)
    assert str(caught.value) == (f"cannot remove old runs in {directory}: {directory.parent} is a symlink "
                                 f"(never followed under {persist})")


def test_pruning_a_directory_not_made_yet_drops_nothing(tmp_path: Path) -> None:
    assert runstore.prune(runstore.image_dir(tmp_path, IMAGE), 1, tmp_path) == []


@pytest.mark.parametrize(("a", "b", "same"), [
    ("nginx", "docker.io/library/nginx:latest", True),
    ("registry.local:5000/team/app:1", "registry.local:5000/team/app:1", True),
    ("good.local/reader:1", "evil.local/reader:1", False),
    ("registry.local:5000/team/app:1", "registry.local:5000/team/app:2", False),
    ("Bad Image!", "Bad Image!", False),
    ("nginx", "Bad Image!", False),
])
def test_same_image_compares_full_normalised_references(a: str, b: str, same: bool) -> None:
    assert runstore.same_image(a, b) is same


def test_legacy_runs_were_kept_by_repository_and_tag_without_the_registry_host(tmp_path: Path) -> None:
    assert runstore.legacy_dir(tmp_path, IMAGE) == tmp_path / ".nydus-top" / "runs" / "team" / "app:1"
    assert runstore.legacy_dir(tmp_path, "nginx") == tmp_path / ".nydus-top" / "runs" / "library" / "nginx:latest"
