"""Snapshots of every screen and dialog, reached by key presses on deterministic data.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVGs (``snapshot_report.html`` shows the differences).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from nydus_top.screens.app import NydusTopApp
from testkit.replay_data import make_backend, startup_trace
from tests.tui.conftest import SIZE, settle, until

RunBefore = Callable[[Pilot], Awaitable[None]]


def keys(*presses: str, text: str | None = None) -> RunBefore:
    """Press keys; optionally fill the open input with ``text``; freeze cursor blink."""

    async def run_before(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.press(*presses)
        await settle(pilot)
        if text is not None:
            pilot.app.screen.query_one(Input).value = text
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


def app(persist_dir: Path | None = None) -> NydusTopApp:
    return NydusTopApp(make_backend(persist_dir))


CASES = {
    "containers": keys(),
    "containers_filter_dialog": keys("slash", text="!library/"),
    "containers_filtered_negated": keys("slash", *"!library/", "enter"),
    "containers_sorted_by_age_desc": keys("s", "s", "s", "s", "s", "r"),
    "containers_not_running": keys("up", "down", "down", "enter"),
    "arm_dialog": keys("down", "down", "a"),
    "trace_armed": keys("down", "down", "a", "i"),
    "trace": keys("enter"),
    "trace_waterfall": keys("enter", "W"),
    "trace_curated": keys("enter", "home", "space", "down", "space", "r", "down", "down", "K"),
    "trace_search": keys("enter", "slash", *"^/etc/", "enter"),
    "trace_paused_after_exclude": keys("enter", "x", "ctrl+u", *"/lib/*", "enter", "p"),
    "exclude_dialog": keys("enter", "X", text=r".*\.pyc$"),
    "save_dialog": keys("enter", "s"),
    "traces": keys("enter", "escape", "down", "enter", "escape", "t"),
    "open_dialog": keys("o"),
    "config": keys("C"),
    "help_containers": keys("question_mark"),
    "help_trace": keys("enter", "question_mark"),
    "command_palette": keys("enter", "ctrl+p", *"sav"),
    "merge_dialog": keys("enter", "escape", "down", "enter", "m"),
    "quit_dialog": keys("enter", "S", "home", "d", "escape", "down", "enter", "escape", "down", "a", "c", "q"),
}


@pytest.mark.parametrize("name", CASES)
def test_screen(name: str, snap_compare) -> None:  # snap_compare: pytest-textual-snapshot fixture
    assert snap_compare(app(), run_before=CASES[name], terminal_size=SIZE)


def test_confirm_overwrite_dialog(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out.list").write_text("/old\n")
    assert snap_compare(app(tmp_path), run_before=keys("enter", "s", "ctrl+u", *"out.list", "enter"),
                        terminal_size=SIZE)


def test_save_warnings_dialog(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nydus_top.model.records import Access

    monkeypatch.chdir(tmp_path)
    backend = make_backend(tmp_path)
    backend.recordings = {"c-nginx": [Access(0, "/ok", 1, 1, "open", 7, "sh"),
                                      Access(1, "/bad\nname", 1, 2, "open", 7, "sh")]}
    assert snap_compare(NydusTopApp(backend), run_before=keys("enter", "s", "ctrl+u", *"w.list", "enter"),
                        terminal_size=SIZE)


def test_convert_screen(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Log

    from nydus_top.convert import nydusify
    from tests.tui.test_convert import FAKE

    monkeypatch.setenv("PATH", f"{FAKE.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "hang")
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(tmp_path))
    # nydusify's lines show their elapsed times: a clock that stands still keeps them stable
    monkeypatch.setattr(nydusify, "time", SimpleNamespace(monotonic=lambda: 100.0))

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("enter", "c", "enter")
        await until(pilot, lambda: any(line.endswith("s] ready") for line in pilot.app.screen.query_one(Log).lines),
                    what="nydusify to start")

    assert snap_compare(NydusTopApp(make_backend(nydusify="fake_nydusify")), run_before=run_before,
                        terminal_size=SIZE)


def test_trace_of_an_armed_start_whose_mark_was_late(snap_compare) -> None:
    backend = make_backend()
    backend.recordings = {"c-job": startup_trace()[5:9]}
    choose = keys("down", "down", "a", "c")

    async def run_before(pilot: Pilot) -> None:
        await choose(pilot)
        backend.start("c-job", late=True)  # containerd was answered before the mark was in place
        pilot.app.pump()
        await settle(pilot)

    assert snap_compare(NydusTopApp(backend), run_before=run_before, terminal_size=SIZE)


def test_trace_of_an_armed_start_cut_at_a_stamped_ready_line(snap_compare) -> None:
    from tests.tui.test_ready_cut_app import FIRST_AFTER, LATE, end_at_the_ready_line, job_backend

    backend = job_backend()
    choose = keys("down", "down", "a", "c")

    async def run_before(pilot: Pilot) -> None:
        await choose(pilot)
        screen = pilot.app.screen
        backend.start("c-job")
        screen.run.records([FIRST_AFTER])
        screen.run.records([LATE])
        pilot.app.pump()
        end_at_the_ready_line(screen)
        pilot.app.pump()
        await settle(pilot)

    assert snap_compare(NydusTopApp(backend), run_before=run_before, terminal_size=SIZE)
