"""j/k and g/G move in every list, table and scrolling text, as in k9s and less."""

from __future__ import annotations

from textual.widgets import DataTable

from nydus_top.screens.config import ConfigScreen
from nydus_top.screens.dialogs import MessageDialog
from nydus_top.screens.help import HelpScreen
from nydus_top.screens.navigation import NavScroll
from nydus_top.screens.traces import TracesScreen
from tests.tui.conftest import on_trace, running


async def _rows_move(pilot, table: DataTable) -> None:
    await pilot.press("g")
    assert table.cursor_row == 0
    await pilot.press("j", "j")
    assert table.cursor_row == 2
    await pilot.press("k")
    assert table.cursor_row == 1
    await pilot.press("G")
    assert table.cursor_row == table.row_count - 1
    await pilot.press("g")
    assert table.cursor_row == 0


async def test_containers_and_config_tables() -> None:
    async with running() as (app, pilot):
        await _rows_move(pilot, app.screen.query_one(DataTable))
        await pilot.press("C")
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen)
        await _rows_move(pilot, app.screen.query_one(DataTable))


async def test_trace_list_and_traces_table() -> None:
    async with on_trace() as (app, pilot, screen):
        await pilot.press("j", "j", "k")
        assert screen.view.cursor == 1
        await pilot.press("G")
        assert screen.view.cursor == len(screen.run.items) - 1
        await pilot.press("g")
        assert screen.view.cursor == 0
        await pilot.press("escape", "down", "enter", "escape", "t")
        await pilot.pause()
        assert isinstance(app.screen, TracesScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count >= 2
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("k")
        assert table.cursor_row == table.row_count - 2
        await pilot.press("g", "j")
        assert table.cursor_row == 1


async def test_help_and_message_text_scroll() -> None:
    async with running() as (app, pilot):
        app.push_screen(MessageDialog("Many lines", [f"line {i}" for i in range(200)]))
        await pilot.pause()
        body = app.screen.query_one(NavScroll)
        await pilot.press("j", "j")
        assert body.scroll_y == 2
        await pilot.press("k")
        assert body.scroll_y == 1
        await pilot.press("G")
        await pilot.pause()
        assert body.scroll_y == body.max_scroll_y > 100
        await pilot.press("g")
        await pilot.pause()
        assert body.scroll_y == 0
        await pilot.press("escape", "question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and app.screen.query_one(NavScroll).has_focus
