"""Traces: every trace of this session (live, armed, stopped, loaded); Enter opens one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from nydus_top.model.trace import TraceRun
from nydus_top.text import human_size, printable

from .base import LiveScreen
from .diff import DiffScreen
from .navigation import NavTable

if TYPE_CHECKING:
    from .app import NydusTopApp


class TracesScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open", priority=True),
        Binding("S", "stop", "Stop trace"),
        Binding("space", "pick", "Pick", show=False),
        Binding("D", "diff", "Diff", show=False),
    ]

    app: NydusTopApp

    def __init__(self) -> None:
        super().__init__()
        self.picked: list[int] = []  # run ids picked for a diff (space), at most two

    def compose(self) -> ComposeResult:
        yield Static(" Traces", id="title", classes="titlebar")
        table: DataTable[Any] = NavTable(id="traces", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "TARGET", "STATE", "FILES", "BYTES", "ROWS", "OVERFLOW")
        yield table
        yield Static("enter opens a trace · traces keep running when you leave them", classes="statusbar")
        yield Footer()

    def on_mount(self) -> None:
        self.rebuild()

    def on_screen_resume(self) -> None:
        self.rebuild()

    def on_tick(self, changed: set[int], _node_dirty: bool) -> bool:
        if changed:
            self.rebuild()
        return False

    def rebuild(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        runs = self.app.workspace.runs
        for index, run in enumerate(runs):
            state = run.state.value + (f" ({run.error})" if run.error else "")
            mark = "*" if run.id in self.picked else ""  # picked for a diff
            cells = (mark + str(index + 1), run.target.label, state, str(run.files), human_size(run.bytes),
                     str(len(run.items)), str(len(run.items.overflows)))
            table.add_row(*(Text(printable(cell)) for cell in cells))
        if runs:
            table.move_cursor(row=max(0, min(cursor, len(runs) - 1)), animate=False)

    def current_run(self) -> TraceRun | None:
        row, runs = self.query_one(DataTable).cursor_row, self.app.workspace.runs
        return runs[row] if 0 <= row < len(runs) else None

    def action_open(self) -> None:
        run = self.current_run()
        if run is not None:
            self.app.open_run(run)

    def action_pick(self) -> None:
        run = self.current_run()
        if run is not None:
            picked = self.picked
            self.picked = [i for i in picked if i != run.id] if run.id in picked else [*picked, run.id][-2:]
            self.rebuild()

    def action_diff(self) -> None:
        """Diff the two picked traces' lists (or the one picked and the one under the cursor)."""

        cursor = self.current_run()
        ids = self.picked if len(self.picked) == 2 else [*self.picked, *([cursor.id] if cursor else [])][:2]
        runs = [run for i in ids if (run := self.app.workspace.get(i)) is not None]
        if len(runs) != 2 or runs[0] is runs[1]:
            self.notify("space picks two traces, D compares them", title="Diff")
            return
        self.app.push_screen(DiffScreen(*((run.target.label, run.items.entries()) for run in runs)))

    def action_stop(self) -> None:
        run = self.current_run()
        if run is not None:
            self.app.workspace.stop(run)
