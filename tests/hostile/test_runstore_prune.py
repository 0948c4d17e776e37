"""The run store never removes through a symlink: an image's run directory swapped for a symlink
while a run is saved never makes pruning unlink files outside persist_dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nydus_top.lists import files as listfile
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore

IMAGE = "registry.local:5000/team/app:1"


@pytest.fixture
def persist(tmp_path: Path) -> Path:
    (tmp_path / "persist").mkdir()
    return tmp_path / "persist"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


def test_pruning_runs_never_removes_through_a_directory_swapped_for_a_symlink(
        persist: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = ListMeta(image=IMAGE, container="app")
    entries = [ListedFile("/bin/app", 1, 1)]
    runstore.save_run(persist, entries, meta, keep=1, when=1_700_000_000)
    (old,) = runstore.runs_of(runstore.image_dir(persist, IMAGE))
    # Files named like runs outside persist_dir, where a local user points the image's directory
    # between our save and our pruning.
    for suffix in ("", ".csv", ".nydus-top.json"):
        (elsewhere / (old.name + suffix)).write_bytes(b"precious\n")
    real_save = runstore.save_list

    def save_then_swap(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_save(*args, **kwargs)
        team = persist / ".nydus-top" / "image-runs" / "registry.local:5000" / "team"
        os.rename(team, persist / "moved")
        team.symlink_to(elsewhere)
        return result

    monkeypatch.setattr(runstore, "save_list", save_then_swap)
    with pytest.raises(listfile.ListFileError, match="team is a symlink"):
        runstore.save_run(persist, entries, meta, keep=1, when=1_700_000_001)
    assert sorted(p.read_bytes() for p in elsewhere.iterdir()) == [b"precious\n"] * 3


def test_pruning_runs_removes_the_oldest_with_their_siblings(persist: Path) -> None:
    meta = ListMeta(image=IMAGE, container="app")
    entries = [ListedFile("/bin/app", 1, 1)]
    for n in range(3):
        runstore.save_run(persist, entries, meta, keep=2, when=1_700_000_000 + n)
    runs = runstore.runs_of(runstore.image_dir(persist, IMAGE))
    assert [r.name[:15] for r in runs] == ["20231114T221321", "20231114T221322"]
    assert sorted(p.name for p in runs[0].parent.iterdir()) == sorted(
        r.name + s for r in runs for s in ("", ".csv", ".nydus-top.json"))
