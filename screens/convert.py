"""Convert: run the conversion (nydusify, or ctr-remote then its push) with the curated list and
stream its output; `x` cancels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from nydus_top.convert.nydusify import Conversion, ConversionError, OutputLine
from nydus_top.text import printable

from .navigation import NavLog

if TYPE_CHECKING:
    from .app import NydusTopApp


# nydusify's output lines kept on screen (the oldest go first): a conversion printing without end
# cannot grow the app's memory.
MAX_OUTPUT_LINES = 10_000


class ConvertScreen(Screen[None]):
    BINDINGS = [
        Binding("x", "cancel", "Cancel conversion"),
        Binding("escape", "back", "Back (cancels a running conversion)"),
    ]

    app: NydusTopApp

    def __init__(self, conversion: Conversion, source: str, warnings: tuple[str, ...], *,
                 fed: str = "list") -> None:
        super().__init__()
        self.fed = fed  # what the first step reads on stdin: "list" or "record"
        self.conversion = conversion
        self.source = source
        self.warnings = warnings
        self.finished = False

    def compose(self) -> ComposeResult:
        yield Static(printable(f" Convert {self.source}"), id="title", classes="titlebar", markup=False)
        yield Static(printable(" $ " + " ".join(self.conversion.argv) + f" < {self.fed}"), id="argv", markup=False)
        yield NavLog(id="output", highlight=False, max_lines=MAX_OUTPUT_LINES)
        yield Static("running…", id="status", classes="statusbar", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(Log)
        for warning in self.warnings:
            log.write_line(printable(f"nydus-top: {warning}"))
        self.convert()

    @work(thread=True, exit_on_error=False)
    def convert(self) -> None:
        def line(out: OutputLine) -> None:
            self.app.call_from_thread(self.query_one(Log).write_line, printable(out.shown()))  # echoes registries

        try:
            summary = self.conversion.run(line).summary()
        except ConversionError as err:
            summary = str(err)
        self.app.call_from_thread(self.done, summary)

    def done(self, summary: str) -> None:
        self.finished = True
        self.query_one("#status", Static).update(printable(summary))
        self.refresh_bindings()  # nothing left to cancel: x leaves the footer

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "cancel" and self.finished)

    def action_cancel(self) -> None:
        if not self.finished:
            self.conversion.cancel()
            self.query_one("#status", Static).update("cancelling…")

    def action_back(self) -> None:
        self.conversion.cancel()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self.conversion.cancel()
