"""The live trace list: a Line-API widget that renders only the visible rows of a TraceList."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nydus_top.model.trace import TraceRun
from nydus_top.model.tracelist import Row
from nydus_top.text import human_size, printable

LINE_CACHE = 256  # rendered rows kept: a few screenfuls (each Strip holds several small caches)
BAR_CELLS = 4
_EIGHTHS = " ▏▎▍▌▋▊▉█"
PATH_MIN = 40  # cells the path keeps as the view narrows: the other columns hide first


@dataclass(frozen=True, slots=True)
class Column:
    """A column before the path: its key in a row's cells, title, width and alignment."""

    key: str
    title: str
    width: int
    align: str = ">"


# The first column holds the marks: * selected, ! created at runtime (flagged); both can show.
TRACE_COLUMNS = (Column("marks", "", 2, "<"), Column("#", "#", 6), Column("ms", "ms", 9), Column("size", "size", 8),
                 Column("read", "read", 8), Column("bar", "", BAR_CELLS, "<"), Column("kind", "kind", 4, "<"),
                 Column("pid", "pid", 7), Column("comm", "comm", 15, "<"))
TRACE_HIDE_FIRST = ("pid", "bar", "read", "kind", "size", "comm", "ms")  # as the view narrows, in this order


def fit_columns(columns: tuple[Column, ...], hide_first: tuple[str, ...], width: int) -> tuple[Column, ...]:
    """The columns shown in ``width`` cells: those of ``hide_first`` go, in its order, until the
    path has PATH_MIN cells (or nothing is left to hide)."""
    shown = columns
    for key in hide_first:
        if sum(c.width + 1 for c in shown) + PATH_MIN <= width:
            break
        shown = tuple(c for c in shown if c.key != key)
    return shown


def header_of(columns: tuple[Column, ...]) -> str:
    return " ".join(f"{c.title:{c.align}{c.width}}" for c in columns) + " path"


def join_cells(columns: tuple[Column, ...], cells: dict[str, str], path: str) -> str:
    """One line: each shown column's cell at its width (cut if longer), then the path."""
    return " ".join(f"{cells[c.key]:{c.align}{c.width}.{c.width}}" for c in columns) + " " + path


HEADER = header_of(TRACE_COLUMNS)


def read_bar(read: int | None, size: int | None) -> str:
    """BAR_CELLS cells filled in eighths by the share of the file read; blank without data."""
    if read is None or not size:
        return " " * BAR_CELLS
    eighths = min(BAR_CELLS * 8, -(-read * BAR_CELLS * 8 // size))  # any byte read shows
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(BAR_CELLS)


def row_cells(position: int, entry: Row, read: int | None = None, *, selected: bool = False,
              flagged: bool = False) -> dict[str, str]:
    """A row's cells by column key; "-" or blank where a loaded list has no value. ``read``:
    bytes of the file read (range tracer), None without range data."""
    return {
        "marks": ("*" if selected else " ") + ("!" if flagged else " "),
        "#": str(position + 1),
        "ms": "-" if entry.elapsed_us is None else f"{entry.elapsed_us / 1000:.1f}",
        "size": human_size(entry.size),
        "read": human_size(read),
        "bar": read_bar(read, entry.size),
        "kind": entry.kind or "-",
        "pid": str(entry.pid or ""),
        "comm": printable(entry.comm),
    }


def format_row(position: int, entry: Row, read: int | None = None, *, selected: bool = False,
               flagged: bool = False, columns: tuple[Column, ...] = TRACE_COLUMNS) -> str:
    """One line under the header of ``columns`` (every column unless told)."""
    cells = row_cells(position, entry, read, selected=selected, flagged=flagged)
    return join_cells(columns, cells, printable(entry.path))


def describe_row(position: int, entry: Row, read: int | None = None) -> list[str]:
    """The whole row, one field a line: what a narrow view hides, and the path uncut."""
    ms = "-" if entry.elapsed_us is None else f"{entry.elapsed_us / 1000:.1f} ms"
    read_text = "-" if read is None else f"{human_size(read)} of {human_size(entry.size)}"
    return [f"path   {printable(entry.path)}", f"#      {position + 1}", f"first  {ms}",
            f"size   {human_size(entry.size)}", f"read   {read_text}", f"kind   {entry.kind or '-'}",
            f"pid    {entry.pid or '-'}", f"comm   {printable(entry.comm) or '-'}"]


class TraceView(ScrollView, can_focus=True):
    """Rows of one trace; cursor, multi-selection and follow (tail) mode."""

    COMPONENT_CLASSES = {"traceview--cursor", "traceview--selected", "traceview--flagged"}
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "Top", show=False),
        Binding("end,G", "jump(-1)", "Bottom", show=False),
        Binding("space", "select", "Select", show=False),
    ]

    class CursorMoved(Message):
        """The cursor or selection changed (the screen updates its status line)."""

    class ColumnsChanged(Message):
        """The view's width shows other columns (the screen updates its header)."""

    COLUMNS: tuple[Column, ...] = TRACE_COLUMNS
    HIDE_FIRST: tuple[str, ...] = TRACE_HIDE_FIRST

    def __init__(self, run: TraceRun, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run = run
        self.cursor = 0
        self.selected: set[int] = set()  # entry ids, so a selection survives reordering
        self.follow = len(run.items) == 0
        self._cache: LRUCache[tuple[object, ...], Strip] = LRUCache(LINE_CACHE)
        self._styles: dict[tuple[object, ...], Style] = {}  # (flagged, selected, cursor, *components) -> style
        self.columns: tuple[Column, ...] = self.COLUMNS  # those the width leaves room for (on_resize)
        self._header = header_of(self.columns)  # also the line cache's key for the columns (a str hashes once)

    def header(self) -> str:
        return self._header

    # -- data ------------------------------------------------------------------------------

    def rows_changed(self) -> None:
        """Call after the list changed (ingest or edit): resize, follow, repaint. The caller
        updates its counters itself (no CursorMoved: once per tick is enough). Files dropped at
        the end of start-up (a stamped ready line) are no longer selected."""
        dropped = self.run.items.dropped
        if self.selected and not self.selected.isdisjoint(dropped):
            self.selected -= dropped
        count = len(self.run.items)
        self.virtual_size = Size(self.size.width, count)
        if self.follow and count:
            self.cursor = count - 1
        self.cursor = max(0, min(self.cursor, count - 1))
        self._scroll_cursor_into_view()
        self.refresh()

    def selection_rows(self) -> list[int]:
        """Row positions of the selection, or the cursor row when nothing is selected."""
        if not len(self.run.items):
            return []
        if not self.selected:
            return [self.cursor]
        return self.run.items.positions(self.selected)

    def forget_hidden(self) -> None:
        """Drop selected entries an edit removed from view: what is counted and acted on is
        what is shown (an undo that brings them back does not reselect them)."""
        if self.selected:
            rows = self.run.items.rows
            self.selected = {rows[pos] for pos in self.run.items.positions(self.selected)}

    def move_cursor(self, row: int, *, follow: bool = False) -> None:
        """Move the cursor; without a scroll only the two lines it left and entered repaint."""
        count = len(self.run.items)
        old, top = self.cursor, self.scroll_offset.y
        self.cursor = max(0, min(row, count - 1)) if count else 0
        self.follow = follow
        self._scroll_cursor_into_view()
        if self.scroll_offset.y == top:
            self.refresh_line(old)
            self.refresh_line(self.cursor)
        else:
            self.refresh()
        self.post_message(self.CursorMoved())

    # -- actions ---------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def action_jump(self, where: int) -> None:
        count = len(self.run.items)
        self.move_cursor(0 if where == 0 else count - 1, follow=where != 0)

    def action_select(self) -> None:
        if not len(self.run.items):
            return
        ident = self.run.items.row_id(self.cursor)
        self.selected.symmetric_difference_update({ident})
        self.move_cursor(self.cursor + 1)

    def on_click(self, event: events.Click) -> None:
        self.move_cursor(self.scroll_offset.y + event.y)

    # -- rendering -------------------------------------------------------------------------

    def _scroll_cursor_into_view(self) -> None:
        height = self.scrollable_content_region.height or 1
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.run.items))
        self._scroll_cursor_into_view()
        columns = fit_columns(self.COLUMNS, self.HIDE_FIRST, self.scrollable_content_region.width)
        if columns != self.columns:
            self.columns = columns
            self._header = header_of(columns)
            self.refresh()
        self.post_message(self.ColumnsChanged())

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        items = self.run.items
        if row >= len(items):
            return Strip.blank(width, self.rich_style)
        ident = items.row_id(row)
        is_cursor = row == self.cursor
        is_selected = ident in self.selected
        is_flagged = ident in items.flagged
        read = items.read_bytes(row)
        # Everything a line's look depends on is in the key, so edits never need to clear the cache.
        key = (ident, row, is_cursor, is_selected, is_flagged, read, width, scroll_x, self.has_focus, self._header)
        strip = self._cache.get(key)
        if strip is None:
            style = self._line_style(is_flagged, is_selected, is_cursor and self.has_focus)
            text = format_row(row, items[row], read, selected=is_selected, flagged=is_flagged, columns=self.columns)
            strip = Strip([Segment(text, style)]).crop_extend(scroll_x, scroll_x + width, style)
            self._cache[key] = strip
        return strip

    def _line_style(self, flagged: bool, selected: bool, cursor: bool, *components: str) -> Style:
        """Computing rich styles walks the CSS: do it once per combination, not per line.
        *components*: further component classes a subclass's rows add (before the cursor's)."""
        key = (flagged, selected, cursor, *components)
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if flagged:
                style += self.get_component_rich_style("traceview--flagged")
            if selected:
                style += self.get_component_rich_style("traceview--selected")
            for component in components:
                style += self.get_component_rich_style(component)
            if cursor:
                style += self.get_component_rich_style("traceview--cursor")
            self._styles[key] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._cache.clear()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

