"""Config: the effective configuration, key by key, and the files it was read from."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

if TYPE_CHECKING:
    from .app import NydusTopApp


def config_items(config: object) -> list[tuple[str, str]]:
    if dataclasses.is_dataclass(config):
        pairs = [(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)]
    else:
        pairs = sorted(vars(config).items())
    return [(k, repr(v) if isinstance(v, str) else str(v)) for k, v in pairs if not k.startswith("_")]


class ConfigScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    app: NydusTopApp

    def compose(self) -> ComposeResult:
        backend = self.app.backend
        yield Static(" Config (effective)", id="title", classes="titlebar")
        table: DataTable = DataTable(id="config", cursor_type="row", zebra_stripes=True)
        table.add_columns("KEY", "VALUE")
        for key, value in config_items(backend.config):
            table.add_row(key, value)
        yield table
        sources = list(backend.config_sources) or ["built-in defaults"]
        yield Static("Read from, later overriding earlier:\n" + "\n".join(f"  {i + 1}. {s}" for i, s in
                                                                          enumerate(sources)), id="sources",
                     markup=False)
        yield Footer()
