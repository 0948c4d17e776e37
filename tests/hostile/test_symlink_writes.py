"""Saves under persist_dir never follow a symlink (issue 9 item 2): a directory, the file itself,
its csv, its metadata file or a temporary file planted as a symlink cannot redirect a root write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nydus_top.fs import confined
from nydus_top.fs.confined import within
from nydus_top.lists.files import ListExistsError, ListFileError, result_paths, save_list, save_range_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from testkit.replay_data import make_backend
from tests.tui.conftest import on_trace, settle

ENTRIES = [ListedFile("/bin/app", 10, 1), ListedFile("/etc/app.conf", 5, 2)]
EVIL = "docker.io/library/evil:1"


@pytest.fixture
def persist(tmp_path: Path) -> Path:
    (tmp_path / "persist").mkdir()
    return tmp_path / "persist"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("meta", [None, ListMeta(image=EVIL)], ids=["pair", "with-metadata"])
def test_a_symlinked_directory_refuses_the_save(persist: Path, elsewhere: Path, meta) -> None:
    (persist / "library").symlink_to(elsewhere)
    target = result_paths(persist, EVIL).list
    with pytest.raises(ListFileError) as err:
        save_list(ENTRIES, target, meta=meta, root=persist)
    assert str(err.value) == (f"cannot save {target}: {persist}/library is a symlink "
                              f"(never followed under {persist})")
    assert tree(elsewhere) == []


def test_no_directory_is_created_through_a_symlink(persist: Path, elsewhere: Path) -> None:
    (persist / "team").mkdir()
    (persist / "team" / "link").symlink_to(elsewhere)
    target = persist / "team" / "link" / "new" / "deeper" / "app:1"
    with pytest.raises(ListFileError, match="team/link is a symlink"):
        save_list(ENTRIES, target, root=persist)
    assert tree(elsewhere) == []


def test_a_symlink_to_a_file_in_the_way_is_not_followed(persist: Path, elsewhere: Path) -> None:
    (persist / "library").mkdir()
    (persist / "library" / "evil:1").symlink_to(elsewhere / "victim")  # dangling on purpose
    with pytest.raises(ListFileError, match="library/evil:1 is a symlink"):
        save_list(ENTRIES, persist / "library" / "evil:1" / "x", root=persist)
    assert tree(elsewhere) == []


@pytest.mark.parametrize("which", ["list", "csv", "meta"])
def test_a_symlinked_result_file_counts_as_existing_and_is_replaced_not_followed(
        persist: Path, elsewhere: Path, which: str) -> None:
    target = result_paths(persist, EVIL).list
    link = {"list": target, "csv": Path(f"{target}.csv"), "meta": Path(f"{target}.nydus-top.json")}[which]
    target.parent.mkdir()
    victim = elsewhere / "victim"
    victim.write_bytes(b"precious\n")
    link.symlink_to(victim)
    with pytest.raises(ListExistsError):
        save_list(ENTRIES, target, meta=ListMeta(image=EVIL), root=persist)
    assert victim.read_bytes() == b"precious\n"
    save_list(ENTRIES, target, meta=ListMeta(image=EVIL), root=persist, overwrite=True)
    assert victim.read_bytes() == b"precious\n"
    assert not link.is_symlink() and link.is_file()
    assert target.read_text() == "/bin/app\n/etc/app.conf\n"


def test_a_dangling_symlink_where_the_file_goes_is_not_written_through(persist: Path, elsewhere: Path) -> None:
    target = persist / "app:1"
    target.symlink_to(elsewhere / "created")
    with pytest.raises(ListExistsError):
        save_list(ENTRIES, target, root=persist)
    assert tree(elsewhere) == []


def test_a_planted_temporary_name_is_skipped(persist: Path, elsewhere: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    names = iter(["a" * 16, "a" * 16, "b" * 16, "c" * 16])
    monkeypatch.setattr(confined.secrets, "token_hex", lambda n: next(names))
    (persist / f".app:1{confined.TEMP_MARK}{'a' * 16}.tmp").symlink_to(elsewhere / "tmp")
    save_list(ENTRIES, persist / "app:1", root=persist)
    assert tree(elsewhere) == []
    assert (persist / "app:1").read_text() == "/bin/app\n/etc/app.conf\n"


def test_range_list_under_persist_dir_is_held_to_the_same_rule(persist: Path, elsewhere: Path) -> None:
    (persist / "out").symlink_to(elsewhere)
    target = persist / "out" / "ranges.json"
    with pytest.raises(ListFileError, match="is a symlink"):
        save_range_list(ENTRIES, target, root=within(target, persist))
    assert tree(elsewhere) == []


def test_persist_dir_itself_may_be_a_symlink(tmp_path: Path, elsewhere: Path) -> None:
    # The operator configured it: the root is resolved as given, only what is below is checked.
    (tmp_path / "configured").symlink_to(elsewhere)
    save_list(ENTRIES, result_paths(tmp_path / "configured", EVIL).list, root=tmp_path / "configured")
    assert tree(elsewhere) == ["library", "library/evil:1", "library/evil:1.csv"]


def test_an_operator_path_outside_persist_dir_follows_symlinks(tmp_path: Path, persist: Path,
                                                              elsewhere: Path) -> None:
    (tmp_path / "mine").symlink_to(elsewhere)
    target = tmp_path / "mine" / "list"
    assert within(target, persist) is None
    save_list(ENTRIES, target, root=within(target, persist))
    assert tree(elsewhere) == ["list", "list.csv"]


def test_a_path_outside_the_root_is_refused(persist: Path, tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="not under"):
        save_list(ENTRIES, persist / ".." / "escaped", root=persist)
    assert not (tmp_path / "escaped").exists()


def test_the_app_saving_to_persist_dir_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    asyncio.run(_app_saves_to_persist_dir(tmp_path))


async def _app_saves_to_persist_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (tmp_path / "library").symlink_to(elsewhere)  # make_backend: persist_dir is tmp_path, image library/nginx
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("s", "enter")
        await settle(pilot)
        status = str(screen.query_one("#status").render())
        assert f"{tmp_path}/library is a symlink" in status
    assert tree(elsewhere) == []


def test_record_refuses_to_save_through_a_symlink_in_persist_dir(sandbox_node, tmp_path: Path,
                                                                 elsewhere: Path) -> None:
    from testkit import workload
    from testkit.harness import start_recorder, wait_exited

    # An image of its own (one more file): the same content under a second name would rename
    # the workload image other tests run in what NRI reports.
    (tmp_path / "build").mkdir()
    files = {**workload.image_files(workload.build_binary(tmp_path / "build")), "/etc/evil": b"symlink test\n"}
    image = sandbox_node.load_image("nydus-top.local/library/evil:1", files, workload.command("exit"))
    persist = tmp_path / "persist"
    persist.mkdir()
    (persist / "x").mkdir()
    (persist / "library").symlink_to(elsewhere)
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--image", image])
    pod = sandbox_node.cri.run_pod("symlink-test", namespace="hostile")
    try:
        cid = sandbox_node.cri.create_container(pod, "evil", image, command=workload.command("exit"))
        sandbox_node.cri.start_container(cid)
        assert wait_exited(sandbox_node.cri, cid) == 0
        recording = rec.log.wait_for(f"recording hostile/symlink-test/evil ({cid[:12]})", 10)
        line = rec.log.lines[rec.log.wait_for("SAVED: ", 10, recording + 1)]  # refused (its run is kept elsewhere)
    finally:
        sandbox_node.cri.remove_pod(pod)
        assert rec.stop() == 0
    assert (f"NOT SAVED: cannot save {persist}/library/evil:1: {persist}/library is a symlink "
            f"(never followed under {persist})") in line
    assert tree(elsewhere) == []
