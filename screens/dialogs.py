"""Modal dialogs: prompt, confirm, message, arm-next-start, save, merge, quit.

Their text carries paths and names (the operator's or a container's): it is never read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from nydus_top.text import counted, printable
from nydus_top.workspace.backend import ArmSpec

from .navigation import NavScroll


class PromptDialog(ModalScreen[str | None]):
    """One line of input; Enter accepts, Esc cancels (returns None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", *, hint: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.hint = hint
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            if self.hint:
                yield Static(self.hint, classes="dialog-hint", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt")
            yield Static("enter accept · esc cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveDialog(PromptDialog):
    """Where to save the curated list (plain list + .csv); prefilled with the optimizer's path."""

    def __init__(self, default: str, rows: int, *, readable: bool, note: str = "") -> None:
        units = "human units" if readable else "bytes, microseconds"
        hint = f"{counted(rows, 'entry', 'entries')} → plain list + .csv ({units})"
        if note:
            hint += f"\n{note}"
        super().__init__("Save prefetch list", default, hint=hint, placeholder="/path/to/list")


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no question; y/Enter says yes, n/Esc says no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Confirm", classes="dialog-title")
            yield Static(self.question, markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="warning")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class MessageDialog(ModalScreen[None]):
    """A title and some lines (e.g. save warnings); any of Esc/Enter/q closes it. Both may name
    files, images and errors from other tenants: shown escaped."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.title_text = printable(title)
        self.lines = [printable(line) for line in lines]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            with NavScroll(classes="dialog-body"):
                yield Static("\n".join(self.lines), markup=False)
            yield Static("esc close", classes="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)


class ArmDialog(ModalScreen[ArmSpec | None]):
    """Trace the next start of this container (by pod and name) or of any container of its image."""

    BINDINGS = [
        Binding("c", "pick('container')", "This container"),
        Binding("i", "pick('image')", "This image"),
        Binding("escape", "pick('')", "Cancel"),
    ]

    def __init__(self, namespace: str, pod: str, container: str, image: str) -> None:
        super().__init__()
        self.specs = {
            "container": ArmSpec(namespace=namespace, pod=pod, container=container),
            "image": ArmSpec(image=image),
        }

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Trace the next start", classes="dialog-title")
            yield Static("The tracer is placed while containerd starts the container,\n"
                         "so start-up is captured from its first instruction.")
            c, i = self.specs["container"], self.specs["image"]
            yield Button(Content(printable(f"c  container {c.namespace}/{c.pod}/{c.container}")), id="container")
            yield Button(Content(printable(f"i  any container of image {i.image}")), id="image")
            yield Static("esc cancel", classes="dialog-keys")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_pick(event.button.id or "")

    def action_pick(self, which: str) -> None:
        self.dismiss(self.specs.get(which))


class QuitDialog(ModalScreen[str | None]):
    """Quit with traces a quit would lose (one line each): "save" all of them first, "quit"
    anyway, or None (Esc) to stay."""

    BINDINGS = [
        Binding("s", "answer('save')", "Save all"),
        Binding("q", "answer('quit')", "Quit anyway"),
        Binding("escape", "answer('')", "Cancel"),
    ]

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__()
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Quit nydus-top? These traces would be lost:", classes="dialog-title")
            with NavScroll(classes="dialog-body"):
                yield Static("\n".join(printable(line) for line in self.lines), markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save all (s)", id="save", variant="primary")
                yield Button("Quit anyway (q)", id="quit", variant="warning")
                yield Button("Cancel (esc)", id="cancel")
            yield Static("s save every list (where it was saved, else the optimizer's path), then quit",
                         classes="dialog-keys")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id or "")

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer if answer in ("save", "quit") else None)


class MergeDialog(ModalScreen[int | str | None]):
    """What to merge into a list: another trace of this session (its id, picked from the list of
    ``traces``: (id, line)) or a saved list (its path, typed). Esc cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, traces: Sequence[tuple[int, str]], path: str) -> None:
        super().__init__()
        self.traces = list(traces)
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Merge into this list", classes="dialog-title")
            yield Static("paths not yet in this list are appended in their order (one undo step)",
                         classes="dialog-hint")
            if self.traces:
                yield Static("another trace of this session (enter):", markup=False)
                yield OptionList(*(Option(Content(printable(line)), id=str(ident)) for ident, line in self.traces),
                                 id="merge-traces")
            yield Static("or a saved list (ours or the optimizer's):", markup=False)
            yield Input(self.path, placeholder="/path/to/list", id="merge-path")
            yield Static("enter merge · tab switch · esc cancel", classes="dialog-keys")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
