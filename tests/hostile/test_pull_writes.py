"""What a pull writes under persist_dir is held to the save rule: no directory between persist_dir
and the lists is followed if it is a symlink, whether it was there before or made to look missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from tests.registry.conftest import LocalRegistry, local_registry, pushed_image  # noqa: F401 - fixtures


def _pushed_list(tmp_path: Path, ref: str) -> None:
    source = tmp_path / "source"
    runstore.save_run(source, [ListedFile("/bin/app", 1, 1)], ListMeta(image=ref, container="app").with_origin(),
                      when=1_700_000_000)
    (run,) = runstore.runs_of(runstore.image_dir(source, ref))
    assert main(["push", str(run), "--plain-http"]) == 0


def _config(tmp_path: Path, persist: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{persist}"\n')
    return config


@pytest.mark.parametrize("command", ["pull", "consensus"])
def test_pulling_into_persist_dir_never_follows_a_symlinked_directory(
        tmp_path: Path, local_registry: LocalRegistry, pushed_image: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str], command: str) -> None:
    ref = pushed_image[0]
    _pushed_list(tmp_path, ref)
    persist, elsewhere = tmp_path / "persist", tmp_path / "elsewhere"
    persist.mkdir()
    elsewhere.mkdir()
    (persist / ".nydus-top").symlink_to(elsewhere)
    capsys.readouterr()
    args = ["pull", ref] if command == "pull" else ["consensus", "--pull", ref]
    assert main(["--config", str(_config(tmp_path, persist)), *args, "--plain-http"]) != 0
    err = capsys.readouterr().err
    assert f"{persist}/.nydus-top is a symlink (never followed under {persist})" in err
    assert list(elsewhere.rglob("*")) == []


def test_pulling_into_persist_dir_writes_the_runs_there(
        tmp_path: Path, local_registry: LocalRegistry, pushed_image: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    ref = pushed_image[0]
    _pushed_list(tmp_path, ref)
    persist = tmp_path / "persist"
    assert main(["--config", str(_config(tmp_path, persist)), "pull", ref, "--plain-http"]) == 0
    (run,) = runstore.runs_of(runstore.image_dir(persist, ref))
    assert run.read_bytes() == b"/bin/app\n"
    assert "pulled 1 list of" in capsys.readouterr().err


def test_consensus_output_under_persist_dir_never_follows_a_symlinked_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    persist, elsewhere = tmp_path / "persist", tmp_path / "elsewhere"
    persist.mkdir()
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.write_bytes(b"/bin/app\n")
    (persist / "out").symlink_to(elsewhere)
    target = persist / "out" / "consensus"
    assert main(["--config", str(_config(tmp_path, persist)), "consensus", str(run), "-o", str(target)]) == 1
    assert f"{persist}/out is a symlink (never followed under {persist})" in capsys.readouterr().err
    assert list(elsewhere.rglob("*")) == []
