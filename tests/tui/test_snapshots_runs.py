"""Snapshots of the runs screens (stability view, runs dialog, diff, arming N starts), reached by
keys on deterministic data. Update after an intended change with ``--snapshot-update`` and look at
the SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from nydus_top.screens.app import NydusTopApp
from nydus_top.screens.stability import StabilityScreen
from testkit.replay_data import STARTUP, make_backend
from tests.tui.conftest import SIZE, settle, until
from tests.tui.test_snapshots import keys

IMAGE = "registry.local:5000/team/app:1"


def _keep_runs(persist: Path) -> None:
    """Ten starts: a fixed start-up, two files in either order, one file of its own per start,
    one file every other start, one created at runtime in one start."""
    fixed = [p for p, _, _ in STARTUP[:8]]
    for n in range(10):
        pair = ["/srv/a.json", "/srv/b.json"][:: 1 if n % 2 else -1]
        paths = [*fixed[:4], *pair, *fixed[4:], f"/tmp/start-{n}", *(["/var/log/app.log"] if n % 2 else [])]
        runstore.save_run(persist, [ListedFile(p, 1000 + 37 * i, 1500 * i + 40 * n) for i, p in enumerate(paths)],
                          ListMeta(image=IMAGE, container="app", runtime=("/var/log/app.log",) if n == 3 else ()),
                          when=1_700_000_000 + n)


def _stability(*presses: str):
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, StabilityScreen), what="the stability screen")
        await keys(*presses)(pilot)

    return run_before


@pytest.mark.parametrize(("name", "presses"), [
    ("stability", ()),
    ("stability_every_file_by_share", ("u", "O", "down", "space", "down")),
    ("stability_share_dialog", ("F",)),
    ("stability_share_auto", ("F", "ctrl+u", *"auto", "enter")),
    ("stability_waterfall", ("W",)),
])
def test_stability(snap_compare, tmp_path: Path, name: str, presses: tuple[str, ...]) -> None:
    _keep_runs(tmp_path)
    assert snap_compare(NydusTopApp(make_backend(tmp_path)), run_before=_stability(*presses), terminal_size=SIZE)


def test_runs_dialog(snap_compare, tmp_path: Path) -> None:
    _keep_runs(tmp_path)
    assert snap_compare(NydusTopApp(make_backend(tmp_path)), run_before=keys("R"), terminal_size=SIZE)


def diff_setup():
    """Keys to the diff of nginx's trace and a list in the cwd (written here)."""
    paths = [p for p, _, _ in STARTUP]
    moved = [*paths[1:3], *paths[4:], "/etc/nginx/extra.conf", paths[0]]  # one gone, one new, one moved far
    save_list([ListedFile(p, 1, 1_500 + 140_000 * i) for i, p in enumerate(moved)], "a.list")
    return keys("enter", "escape", "o", "ctrl+u", *"a.list", "enter", "t", "space", "down", "D")


def test_diff_of_a_trace_and_a_list(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert snap_compare(NydusTopApp(make_backend(tmp_path)), run_before=diff_setup(), terminal_size=SIZE)


def test_traces_with_the_next_starts_armed(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await keys("A", "i")(pilot)
        await keys("ctrl+u", *"3", "enter")(pilot)
        pilot.app.backend.start("c-nginx")
        pilot.app.pump()
        await settle(pilot)

    assert snap_compare(NydusTopApp(make_backend(tmp_path, keep_runs=20)), run_before=run_before, terminal_size=SIZE)
