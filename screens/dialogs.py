"""Modal dialogs: prompt, confirm, message, arm-next-start, save, merge, quit.

Their text carries paths and names (the operator's or a container's): it is never read as markup.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

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

MAX_COMPLETION_SCAN = 10_000  # directory entries a Tab looks at, at most
COMPLETIONS_SHOWN = 8  # candidates named under the input when a Tab finds several


def complete_path(text: str) -> tuple[str, list[str]]:
    """Tab completion of a typed path: (the text completed as far as it is unambiguous, the
    candidates' names when several remain). A single directory gets its "/"; ``~`` is kept."""
    head, _, stem = text.rpartition("/")
    directory = os.path.expanduser(head + "/" if head or text.startswith("/") else ".")
    names: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for n, entry in enumerate(entries):
                if n >= MAX_COMPLETION_SCAN:
                    break
                if entry.name.startswith(stem) and (stem.startswith(".") or not entry.name.startswith(".")):
                    names.append(entry.name + ("/" if entry.is_dir() else ""))
    except OSError:
        return text, []
    if not names:
        return text, []
    prefix = os.path.commonprefix(names)
    done = (head + "/" if head or text.startswith("/") else "") + prefix
    return done, sorted(names) if len(names) > 1 else []


class PromptDialog(ModalScreen[str | None]):
    """One line of input; Enter accepts, Esc cancels (returns None). The text is not
    preselected: the cursor is at its end, so typing adds to a prefilled directory. ``paths``:
    Tab completes a path. ``check``: says what is wrong with an answer (the dialog stays open
    with it), or "" when it may be accepted."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete path", show=False, priority=True),
    ]

    def __init__(self, title: str, value: str = "", *, hint: str = "", placeholder: str = "", paths: bool = False,
                 check: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.hint = hint
        self.placeholder = placeholder
        self.paths = paths
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            if self.hint:
                yield Static(self.hint, classes="dialog-hint", markup=False)
            field = Input(self.value, placeholder=self.placeholder, id="prompt")
            field.select_on_focus = False  # the cursor goes after the text (Textual selects it all on focus)
            yield field
            yield Static("", id="prompt-error", classes="dialog-error", markup=False)
            keys = "enter accept · tab complete · esc cancel" if self.paths else "enter accept · esc cancel"
            yield Static(keys, classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#prompt-error", Static).display = False

    def _tell(self, text: str) -> None:
        line = self.query_one("#prompt-error", Static)
        line.update(printable(text))
        line.display = bool(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = self.check(event.value) if self.check is not None else ""
        if problem:
            self._tell(problem)
            return
        self.dismiss(event.value)

    def action_complete(self) -> None:
        if not self.paths:
            return
        field = self.query_one(Input)
        done, candidates = complete_path(field.value)
        if done != field.value:
            field.value = done
            field.cursor_position = len(done)
        shown = candidates[:COMPLETIONS_SHOWN]
        more = f" … (+{len(candidates) - len(shown)})" if len(candidates) > len(shown) else ""
        self._tell("  ".join(shown) + more if shown else "")

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveDialog(PromptDialog):
    """Where to save the curated list (plain list + .csv); prefilled with the optimizer's path."""

    def __init__(self, default: str, rows: int, *, readable: bool, note: str = "") -> None:
        units = "human units" if readable else "bytes, microseconds"
        hint = f"{counted(rows, 'entry', 'entries')} → plain list + .csv ({units})"
        if note:
            hint += f"\n{note}"
        super().__init__("Save prefetch list", default, hint=hint, placeholder="/path/to/list", paths=True)


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
