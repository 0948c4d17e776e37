"""Modal dialogs: prompt, confirm, message, arm-next-start, save.

Their text carries paths and names (the operator's or a container's): it is never read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from nydus_top.backend import ArmSpec
from nydus_top.display import counted, printable

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
    """A title and some lines (e.g. save warnings); any of Esc/Enter/q closes it."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)

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
