"""Help (`?`): the keys of the screen it was opened from, then the app-wide ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from .navigation import NavScroll


def _keys(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys as the operator types them, description) of each binding (a Binding or the
    ``(key, action[, description])`` tuple Textual also accepts in BINDINGS)."""
    made = [b if isinstance(b, Binding) else Binding(*b) for b in bindings]
    return [(", ".join(k.strip().replace("question_mark", "?").replace("slash", "/") for k in b.key.split(",")),
             b.description) for b in made]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        sections = [(type(self.under).__name__.removesuffix("Screen"), _keys(getattr(self.under, "BINDINGS", [])))]
        focused = self.under.focused
        if focused is not None and type(focused).__module__.startswith(__package__ or "screens"):
            sections.append(("List", _keys(focused.BINDINGS)))
        sections.append(("Everywhere", _keys(self.app.BINDINGS) + [("ctrl+p", "Command palette")]))
        lines = []
        for title, rows in sections:
            lines.append(f"[b]{title}[/b]")
            cells = [f"  [b]{k:<14}[/b] {t:<26}" for k, t in rows]
            half = (len(cells) + 1) // 2  # two columns, read down then across
            right = cells[half:] + [""] * (2 * half - len(cells))
            lines.extend(left + other for left, other in zip(cells[:half], right, strict=True))
            lines.append("")
        with Vertical(classes="dialog wide"):
            yield Label("Keys", classes="dialog-title")
            with NavScroll(classes="dialog-body"):
                yield Static("\n".join(lines))
            yield Static("esc close", classes="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)
