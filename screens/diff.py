"""Diff: two runs or lists side by side: files only in one, files that moved, first-access deltas.

Opened from the Traces list (space picks two traces, ``D`` compares them) or with the palette's
"Diff two lists" (two saved lists or runs, by path). ``m`` sets how many positions a file must
move to count as moved, ``v`` cycles what is shown (everything, only in A, only in B, moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nydus_top.lists.diff import DEFAULT_MOVED, ListDiff, diff
from nydus_top.lists.files import ListFileError, load_list
from nydus_top.model.records import Listable
from nydus_top.text import counted, printable

from .dialogs import MessageDialog, PromptDialog

if TYPE_CHECKING:
    from .app import NydusTopApp

VIEWS = ("all", "only in A", "only in B", "moved")
COLUMNS = ("", "A #", "B #", "SHIFT", "A ms", "B ms", "Δ ms", "PATH")
NARROW = 100  # below this many cells the path keeps its room: SHIFT, A ms and B ms hide
NARROW_COLUMNS = ("", "A #", "B #", "Δ ms", "PATH")


def _ms(us: int | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f}"


def diff_rows(result: ListDiff, view: str = "all") -> list[tuple[str, ...]]:
    """The table's rows for *view*: ``-`` only in A, ``+`` only in B, ``~`` moved (A's positions
    and times where known; 1-based positions)."""
    rows: list[tuple[str, ...]] = []
    if view in ("all", "only in A"):
        rows += [("-", "", "", "", "", "", "", path) for path in result.only_a]
    if view in ("all", "only in B"):
        rows += [("+", "", "", "", "", "", "", path) for path in result.only_b]
    if view in ("all", "moved"):
        for m in result.moved:
            delta = "-" if m.delta_us is None else f"{m.delta_us / 1000:+.1f}"
            rows.append(("~", str(m.position_a + 1), str(m.position_b + 1), f"{m.shift:+d}", _ms(m.elapsed_a),
                         _ms(m.elapsed_b), delta, m.path))
    return rows


class DiffScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "moved", "Moved by"),
        Binding("v", "view", "View"),
        Binding("enter,l", "row_detail", "Whole row", show=False),
    ]

    app: NydusTopApp

    def __init__(self, a: tuple[str, Sequence[Listable]], b: tuple[str, Sequence[Listable]]) -> None:
        super().__init__()
        (self.label_a, self.a), (self.label_b, self.b) = a, b
        self.moved_by = DEFAULT_MOVED
        self.view = VIEWS[0]
        self.result = diff(self.a, self.b, moved_by=self.moved_by)
        self.columns: tuple[str, ...] = ()  # those the width leaves room for
        self.rows: list[tuple[str, ...]] = []

    def compose(self) -> ComposeResult:
        yield Static(" Diff", id="title", classes="titlebar")
        yield Static(id="diff-summary", markup=False)
        yield DataTable(id="diff", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail", markup=False)
        yield Static("- only in A · + only in B · ~ moved · m moved by · v view · l whole row", classes="statusbar")
        yield Footer()

    def on_mount(self) -> None:
        self.rebuild()
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        if self._fit_columns():
            self.rebuild()

    def _fit_columns(self) -> bool:
        """Choose the columns for the width; True when they changed."""
        columns = NARROW_COLUMNS if self.size.width < NARROW else COLUMNS
        if columns == self.columns:
            return False
        self.columns = columns
        return True

    def rebuild(self) -> None:
        r = self.result
        self.query_one("#diff-summary", Static).update(
            printable(f"A = {self.label_a} ({counted(len(self.a), 'file')})") + "\n"
            + printable(f"B = {self.label_b} ({counted(len(self.b), 'file')})") + "\n"
            + f"{r.common} in both · {len(r.only_a)} only in A · {len(r.only_b)} only in B · "
            f"{len(r.moved)} moved by more than {self.moved_by} · showing {self.view}"
            + self._sameness())
        self._fit_columns()
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*self.columns)
        shown = [COLUMNS.index(name) for name in self.columns]
        self.rows = diff_rows(r, self.view)
        for row in self.rows:
            table.add_row(*(Text(printable(row[i])) for i in shown))
        self._detail()

    def _sameness(self) -> str:
        """A line saying so when there is nothing to show (an empty table alone says nothing)."""
        r = self.result
        if r.only_a or r.only_b or r.moved:
            return ""
        if [e.path for e in self.a] == [e.path for e in self.b]:
            return "\nno differences: the same files in the same order"
        return f"\nno differences: the same files, none moved by more than {self.moved_by}"

    def on_data_table_row_highlighted(self) -> None:
        self._detail()

    def _current(self) -> tuple[str, ...] | None:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _detail(self) -> None:
        """The detail line: the selected row's path uncut, then what the narrow columns hide."""
        row = self._current()
        text = ""
        if row is not None:
            hidden = [f"{name} {row[COLUMNS.index(name)]}" for name in COLUMNS[:-1]
                      if name not in self.columns and row[COLUMNS.index(name)]]
            text = " " + row[-1] + "".join(f" · {part}" for part in hidden)
        self.query_one("#detail", Static).update(printable(text))

    def action_row_detail(self) -> None:
        row = self._current()
        if row is not None:
            names = ("change", *COLUMNS[1:])
            lines = [f"{name}: {cell or '-'}" for name, cell in zip(names, row, strict=True)]
            self.app.push_screen(MessageDialog("Diff row", lines))

    def action_moved(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            try:
                value = int(text)
                if value < 0:
                    raise ValueError
            except ValueError:
                self.app.notify(f"not a number of positions: {printable(text)}", title="Diff")
                return
            self.moved_by = value
            self.result = diff(self.a, self.b, moved_by=value)
            self.rebuild()

        self.app.push_screen(PromptDialog("Moved: files whose position shifts by more than", str(self.moved_by)),
                             apply)

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.rebuild()


def diff_lists(app: NydusTopApp) -> None:
    """Ask for two saved lists or runs (paths), read them in a worker, show their diff."""
    default = str(app.backend.config.persist_dir) + "/"

    def first(a: str | None) -> None:
        if not a:
            return

        def second(b: str | None) -> None:
            if b:
                _load(app, a, b)

        app.push_screen(PromptDialog("Diff: list B", default, hint=f"A = {printable(a)}", paths=True), second)

    app.push_screen(PromptDialog("Diff: list A", default, hint="a run, a saved list or an optimizer result",
                                 paths=True), first)


def _load(app: NydusTopApp, a: str, b: str) -> None:
    def read() -> None:
        try:
            la, lb = load_list(a), load_list(b)
        except ListFileError as err:
            app.call_from_thread(app.push_screen, MessageDialog("Cannot diff", [str(err)]))
            return
        app.call_from_thread(app.push_screen, DiffScreen((a, la.entries), (b, lb.entries)))

    app.run_worker(read, thread=True, group="load")
