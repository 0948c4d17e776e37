"""Containers: every pod/container on the node, live; Enter traces, `a` arms the next start."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from nydus_top.model.container_rows import (
    SORT_KEYS,
    ContainerRow,
    build_rows,
    compile_filter,
    filter_rows,
    format_age,
    sort_rows,
)
from nydus_top.model.node import Container, Pod
from nydus_top.text import printable
from nydus_top.workspace.backend import ArmSpec

from .base import LiveScreen
from .dialogs import ArmDialog, MessageDialog, PromptDialog
from .navigation import NavTable
from .stability import arm_starts

if TYPE_CHECKING:
    from .app import NydusTopApp

COLUMNS = ("NAMESPACE/POD", "CONTAINER", "IMAGE", "STATE", "PID", "AGE", "TRACE")
IMAGE = COLUMNS.index("IMAGE")
AGE_TICKS = 10  # rebuild at least every second so ages advance
# Fitting the width: pod and container names keep theirs; IMAGE shrinks (cut on the left, the tag
# kept) down to MIN_IMAGE cells, then PID and then STATE hide. AGE and TRACE stay in view.
MIN_IMAGE = 16
HIDE_FIRST = ("PID", "STATE")
RESERVED = 2 + 2  # the table's vertical scrollbar, and the IMAGE column's padding
_FAMILIAR = ("docker.io/library/", "docker.io/")  # what `docker` leaves out of a reference


def fit_columns(width: int, rows: list[tuple[str, ...]]) -> tuple[tuple[int, ...], int]:
    """(indexes of the COLUMNS shown, cells IMAGE gets) for a table *width* cells wide showing
    *rows* (printable cell texts, one per column)."""
    natural = [max([cell_len(name), *(cell_len(row[i]) for row in rows)]) for i, name in enumerate(COLUMNS)]
    shown = list(range(len(COLUMNS)))
    room = 0
    for hide in (None, *HIDE_FIRST):
        if hide is not None:
            shown.remove(COLUMNS.index(hide))
        room = width - RESERVED - sum(natural[i] + 2 for i in shown if i != IMAGE)
        if room >= min(natural[IMAGE], MIN_IMAGE):
            break
    return tuple(shown), max(min(natural[IMAGE], room), MIN_IMAGE)


def short_image(image: str, width: int) -> str:
    """*image* in at most *width* cells: Docker Hub's implied prefix dropped, then cut on the left."""
    if cell_len(image) <= width:
        return image
    for prefix in _FAMILIAR:
        if image.startswith(prefix):
            image = image[len(prefix):]
            break
    if cell_len(image) <= width:
        return image
    tail = image[-(width - 1):] if width > 1 else ""
    while cell_len(tail) > width - 1:
        tail = tail[1:]
    return "…" + tail


class ContainersScreen(LiveScreen):
    BINDINGS = [
        Binding("enter", "trace", "Trace", priority=True),
        Binding("a", "arm", "Arm next start"),
        Binding("A", "arm_starts", "Arm N starts", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("l", "row_detail", "Whole row", show=False),
    ]
    PALETTE = [
        ("trace", "Trace container", "Attach a tracer to the selected running container"),
        ("arm", "Arm next start", "Trace the next start of this container or image"),
        ("arm_starts", "Arm the next N starts", "Trace the next N starts; each is kept as a run"),
        ("filter", "Filter containers", "Regex filter, ! negates"),
    ]

    app: NydusTopApp

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self.sort_key = "pod"
        self.reverse = False
        self.rows: list[ContainerRow] = []
        self._ticks = 0
        self.shown: tuple[int, ...] = ()  # indexes of the COLUMNS the width leaves room for
        self._trace_column: Any = None

    def compose(self) -> ComposeResult:
        yield Static(id="title", classes="titlebar", markup=False)
        yield NavTable(id="containers", cursor_type="row", zebra_stripes=True)
        yield Static(id="status", classes="statusbar", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.rebuild()

    def on_resize(self) -> None:
        self.rebuild()

    def on_screen_resume(self) -> None:
        self.rebuild()

    def on_tick(self, changed: set[int], node_dirty: bool) -> bool:
        self._ticks += 1
        if node_dirty or self._ticks % AGE_TICKS == 0:
            self.rebuild()
            return True
        if changed:
            self._refresh_trace_cells()
        return False

    # -- data ------------------------------------------------------------------------------

    def _trace_status(self, pods: Mapping[str, Pod], containers: Iterable[Container]) -> dict[str, str]:
        """Container id -> TRACE column text (the workspace's status of each container)."""
        return self.app.workspace.status(pods, containers)

    def _refresh_trace_cells(self) -> None:
        """Only traces changed: rewrite the TRACE cells that differ, not the whole table."""
        pods, by_id = self.app.backend.node.snapshot()
        status = self._trace_status(pods, by_id.values())
        table = self.query_one(DataTable)
        for index, row in enumerate(self.rows):
            text = status.get(row.id, "")
            if text != row.trace:
                self.rows[index] = replace(row, trace=text)
                table.update_cell(row.id, self._trace_column, Text(printable(text)), update_width=True)

    def rebuild(self) -> None:
        node = self.app.backend.node
        pods, by_id = node.snapshot()
        containers = list(by_id.values())
        status = self._trace_status(pods, containers)
        rows = build_rows(pods, containers, status, self.app.backend.now())
        current = self.current_row()  # keep the cursor on the same container
        try:
            shown = filter_rows(rows, self.query_text)
        except re.error:
            shown = rows
        self.rows = sort_rows(shown, self.sort_key, self.reverse)
        table = self.query_one(DataTable)
        cells = [tuple(printable(cell) for cell in (f"{row.namespace}/{row.pod}", row.container, row.image, row.state,
                                                    str(row.pid or ""), format_age(row.age_s), row.trace))
                 for row in self.rows]
        columns, image_width = fit_columns(self.size.width, cells)
        if columns != self.shown:
            table.clear(columns=True)
            keys = table.add_columns(*(COLUMNS[i] for i in columns))
            self.shown, self._trace_column = columns, keys[-1]
        else:
            table.clear()
        for row, texts in zip(self.rows, cells, strict=True):
            fitted = [short_image(texts[i], image_width) if i == IMAGE else texts[i] for i in columns]
            table.add_row(*(Text(text) for text in fitted), key=row.id)
        if current is not None:
            for index, row in enumerate(self.rows):
                if row.id == current.id:
                    table.move_cursor(row=index, animate=False)
                    break
        order = "desc" if self.reverse else "asc"
        flt = f" · filter /{self.query_text}" if self.query_text else ""
        link = ""
        if not node.connected:
            link = f" · not connected: {self.app.warnings[-1]}" if self.app.warnings else " · connecting…"
        self.query_one("#title", Static).update(Text(printable(
            f" Containers [{len(self.rows)}/{len(rows)}] · sort {self.sort_key} {order}{flt}{link}")), layout=False)

    def current_row(self) -> ContainerRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def say(self, text: str) -> None:
        """A status line; it may hold paths, names and errors: shown escaped, never as markup."""
        self.query_one("#status", Static).update(Text(printable(text)), layout=False)

    # -- actions ---------------------------------------------------------------------------

    def action_trace(self) -> None:
        row = self.current_row()
        if row is None:
            return
        workspace = self.app.workspace
        run = workspace.live_run(row.id)
        if run is None:
            if row.state != "running" or not row.pid:
                self.say(f"{row.container} is {row.state}: press a to trace its next start")
                return
            run = workspace.attach(row.id, f"{row.namespace}/{row.pod}/{row.container}", row.image)
        self.app.open_run(run)

    def action_row_detail(self) -> None:
        """Every column of the selected row whole (a narrow terminal cuts the image and hides some)."""
        row = self.current_row()
        if row is not None:
            cells = (f"{row.namespace}/{row.pod}", row.container, row.image, row.state, str(row.pid or ""),
                     format_age(row.age_s), row.trace)
            lines = [f"{name.lower():<13} {cell or '-'}" for name, cell in zip(COLUMNS, cells, strict=True)]
            self.app.push_screen(MessageDialog("Container", [*lines, f"{'id':<13} {row.id}"]))

    def action_arm(self) -> None:
        row = self.current_row()
        if row is None:
            return

        def armed(spec: ArmSpec | None) -> None:
            if spec is not None:
                self.app.open_run(self.app.workspace.arm(spec, row.image))

        self.app.push_screen(ArmDialog(row.namespace, row.pod, row.container, row.image), armed)

    def action_arm_starts(self) -> None:
        row = self.current_row()
        if row is not None:
            arm_starts(self.app, row.namespace, row.pod, row.container, row.image)

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            try:
                compile_filter(text)
            except re.error as err:
                self.say(f"bad filter regex: {err}")
                return
            self.query_text = text
            self.say("")
            self.rebuild()

        self.app.push_screen(PromptDialog("Filter containers", self.query_text,
                                          hint="regex over pod, container, image, state; ! negates",
                                          placeholder="regex or !regex"), apply)

    def action_clear_filter(self) -> None:
        self.query_text = ""
        self.say("")
        self.rebuild()

    def action_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.rebuild()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.rebuild()
