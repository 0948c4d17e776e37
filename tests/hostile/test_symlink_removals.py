"""The recorder removes nothing through a symlink under persist_dir: a directory planted as a
symlink never makes it unlink a list's identity file outside persist_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings

IMAGE = "registry.local:5000/team/app:1"


@pytest.fixture
def persist(tmp_path: Path) -> Path:
    (tmp_path / "persist").mkdir()
    return tmp_path / "persist"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


def _save_recording(settings: RecordSettings, lines: list[str]) -> None:
    recorder = Recorder(settings, lines.append)
    files = CompactList()
    files.append("/bin/app", 10, 0)
    plan = Plan("app-id", result_paths(settings.persist_dir, IMAGE), settings)
    rec = Recording(plan, "pod", "app", None, files, lines.append,  # type: ignore[arg-type]
                    ListMeta(image=IMAGE, container="app", container_id="app-id"))
    recorder._save(rec, "StopContainer")


def test_the_recorder_never_removes_an_identity_file_through_a_symlinked_directory(
        persist: Path, elsewhere: Path) -> None:
    victim = elsewhere / "app:1.nydus-top.json"
    victim.write_bytes(b"precious\n")
    (persist / "team").symlink_to(elsewhere)
    lines: list[str] = []
    _save_recording(RecordSettings(persist, keep_runs=0), lines)
    assert victim.read_bytes() == b"precious\n"
    assert lines == [f"recording app (StopContainer) NOT SAVED: cannot save {persist}/team/app:1: "
                     f"{persist}/team is a symlink (never followed under {persist})"]


def test_the_recorder_still_removes_an_orphan_identity_file(persist: Path) -> None:
    orphan = persist / "team" / "app:1.nydus-top.json"
    orphan.parent.mkdir()
    orphan.write_text("{}\n")  # the operator deleted the list and its csv to record the image again
    lines: list[str] = []
    _save_recording(RecordSettings(persist, keep_runs=0), lines)
    assert lines == [f"saved {persist}/team/app:1 (1 file, StopContainer) for app"]
    assert b'"image"' in orphan.read_bytes()
