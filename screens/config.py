"""Config: the effective configuration under its TOML key names, each with the layer that set it
(default, a file, the command line), and the files it was read from."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nydus_top.config import TOML_KEYS, Config

from .navigation import NavTable

if TYPE_CHECKING:
    from .app import NydusTopApp


def config_items(config: Config) -> list[tuple[str, str, str]]:
    """(TOML key, effective value, where it came from) rows of *config*."""
    rows = []
    packaged = config.sources[0] if config.sources else ""
    for field in dataclasses.fields(config):
        if field.name not in TOML_KEYS:
            continue
        value = getattr(config, field.name)
        if isinstance(value, tuple):
            value = " ".join(value) or "(none)"
        elif isinstance(value, bool):
            value = str(value).lower()
        origin = config.origin(field.name)
        rows.append((TOML_KEYS[field.name], str(value), "default" if origin == packaged else origin or "?"))
    return rows


class ConfigScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    app: NydusTopApp

    def compose(self) -> ComposeResult:
        backend = self.app.backend
        yield Static(" Config (effective)", id="title", classes="titlebar")
        table: DataTable[Any] = NavTable(id="config", cursor_type="row", zebra_stripes=True)
        table.add_columns("KEY", "VALUE", "SET BY")
        for key, value, origin in config_items(backend.config):
            table.add_row(key, Text(value), Text(origin))
        yield table
        config = backend.config
        lines = ["Read from, later layers overriding earlier ones:"]
        layers = [*config.sources, *dict.fromkeys(o for _, o in config.origins if o not in config.sources)]
        lines += [f"  {i + 1}. {source}" for i, source in enumerate(layers)]
        lines += [f"note: {note}" for note in config.notes]
        yield Static("\n".join(lines), id="sources", markup=False)
        yield Footer()
