"""Prompts: the prefilled text is not preselected (typing adds to it), Tab completes paths, and a
check keeps the dialog open with what is wrong."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from nydus_top.model.trace import TraceState
from nydus_top.screens.dialogs import PromptDialog, complete_path
from nydus_top.screens.traces import TracesScreen
from testkit.replay_data import make_backend
from tests.tui.conftest import running, settle
from tests.tui.screentext import screen_text


async def test_typing_into_a_prefilled_prompt_adds_to_the_text(tmp_path: Path) -> None:
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("o")
        await pilot.pause()
        field = app.screen.query_one(Input)
        assert field.value == f"{tmp_path}/" and field.cursor_position == len(field.value)
        await pilot.press(*"x.list")
        assert field.value == f"{tmp_path}/x.list"


async def test_tab_completes_a_path_in_the_open_prompt(tmp_path: Path) -> None:
    (tmp_path / "alpha.list").write_text("/a\n")
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "one").write_text("")
    (tmp_path / "beta" / "two").write_text("")
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("o", "a", "tab")
        field = app.screen.query_one(Input)
        assert isinstance(app.screen, PromptDialog) and field.value == f"{tmp_path}/alpha.list"
        field.value = f"{tmp_path}/b"
        await pilot.press("tab")
        assert field.value == f"{tmp_path}/beta/" and field.cursor_position == len(field.value)
        await pilot.press("tab")  # two candidates: named under the input, the text stays
        assert field.value == f"{tmp_path}/beta/" and "one  two" in screen_text(app)
        await pilot.press("o", "tab")
        assert field.value == f"{tmp_path}/beta/one"


def test_completion_of_a_relative_path_and_of_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / ".hidden").write_text("")
    assert complete_path("li") == ("lists/", [])
    assert complete_path("") == ("lists/", [])  # hidden names only when asked for
    assert complete_path(".h") == (".hidden", [])
    assert complete_path("nothing") == ("nothing", [])
    assert complete_path("/nonexistent-dir/x") == ("/nonexistent-dir/x", [])


async def test_a_bad_number_of_starts_keeps_the_dialog_open_with_the_error(tmp_path: Path) -> None:
    async with running(make_backend(tmp_path, keep_runs=20)) as (app, pilot):
        await pilot.press("A", "c")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PromptDialog)
        await pilot.press("ctrl+u", *"abc", "enter")
        await pilot.pause()
        assert app.screen is dialog and "not a number of starts from 1 to 100: abc" in screen_text(app)
        assert not app.workspace.runs
        await pilot.press("ctrl+u", "3", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TracesScreen)
        assert [run.state for run in app.workspace.runs] == [TraceState.ARMED] * 3
