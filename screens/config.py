"""Config: the effective configuration, key by key, and the files it was read from."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .navigation import NavTable

if TYPE_CHECKING:
    from .app import NydusTopApp


def config_items(config: object) -> list[tuple[str, str]]:
    """(key, value) rows of a Config dataclass, without its provenance fields."""
    rows = []
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        if field.name in ("sources", "notes"):
            continue
        value = getattr(config, field.name)
        if isinstance(value, tuple):
            value = " ".join(value) or "(none)"
        rows.append((field.name, str(value)))
    return rows


class ConfigScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    app: NydusTopApp

    def compose(self) -> ComposeResult:
        backend = self.app.backend
        yield Static(" Config (effective)", id="title", classes="titlebar")
        table: DataTable = NavTable(id="config", cursor_type="row", zebra_stripes=True)
        table.add_columns("KEY", "VALUE")
        for key, value in config_items(backend.config):
            table.add_row(key, Text(value))
        yield table
        config = backend.config
        lines = ["Read from, later layers overriding earlier ones:"]
        lines += [f"  {i + 1}. {source}" for i, source in enumerate(config.sources)]
        lines += [f"note: {note}" for note in config.notes]
        yield Static("\n".join(lines), id="sources", markup=False)
        yield Footer()
