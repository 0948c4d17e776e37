"""Lists, tables and scrolling text that also move with j/k and g/G, as in k9s and less."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Log


class NavTable(DataTable[Any]):
    """A row table: j/k move the cursor down/up, g/G to the first/last row."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
    ]


_SCROLL_KEYS: list[BindingType] = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
]


class NavScroll(VerticalScroll):
    """Scrolling text (help, messages): j/k scroll a line, g/G to the top/bottom."""

    BINDINGS = _SCROLL_KEYS


class NavLog(Log):
    """A streaming log (nydusify's output): j/k scroll a line, g/G to the top/bottom."""

    BINDINGS = _SCROLL_KEYS
