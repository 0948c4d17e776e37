"""The nydus-top application: owns the traces, pumps their inboxes, routes between screens."""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from nydus_top.backend import ArmSpec, Backend
from nydus_top.tracerun import Target, TraceRun, TraceState

from .base import LiveScreen
from .config import ConfigScreen
from .containers import ContainersScreen
from .dialogs import MessageDialog, PromptDialog
from .help import HelpScreen
from .trace import TraceScreen
from .traces import TracesScreen

REFRESH_S = 0.1  # UI ticks: drain trace inboxes and repaint at most this often


class NydusTopApp(App[None]):
    """k9s-style app: Containers is the home screen; traces live on when their screen closes."""

    CSS_PATH = "nydus_top.tcss"
    TITLE = "nydus-top"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("t", "traces", "Traces"),
        Binding("o", "open_list", "Open list"),
        Binding("C", "config", "Config"),
    ]

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.runs: list[TraceRun] = []
        self.arms: dict[int, ArmSpec] = {}  # id(run) -> what it waits for
        self._node_dirty = True
        self._states: dict[int, TraceState] = {}
        self.warnings: deque[str] = deque(maxlen=50)  # from background threads, newest last

    # -- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._unsubscribe = self.backend.node.subscribe(self._on_node_event)
        self.push_screen(ContainersScreen())
        self.set_interval(REFRESH_S, self.pump)
        # The cyclic GC's full collections stall key handling for tens of ms. Textual's
        # start-up objects live as long as the app: freeze them out of the collections.
        self.call_after_refresh(gc.freeze)

    def on_unmount(self) -> None:
        self._unsubscribe()
        for run in self.runs:
            run.close()
        self.backend.close()

    def _on_node_event(self, _event: object) -> None:
        """Runs on the NRI thread: only mark dirty; the next tick repaints."""
        self._node_dirty = True

    def pump(self) -> None:
        """One UI tick: move queued trace records into the lists, then repaint what changed."""
        if not self.is_running:  # shutting down: screens are losing their widgets
            return
        changed: set[int] = set()
        now = self.backend.now()
        for run in self.runs:
            if run.drain() | run.advance(now) or self._states.get(id(run)) is not run.state:
                self._states[id(run)] = run.state
                changed.add(id(run))
                if run.state is not TraceState.ARMED:
                    self.arms.pop(id(run), None)
        screen = self.screen
        if isinstance(screen, LiveScreen) and screen.live and screen.on_tick(changed, self._node_dirty):
            self._node_dirty = False

    # -- traces ----------------------------------------------------------------------------

    def run_for(self, container_id: str) -> TraceRun | None:
        """The newest trace of this container that is still live, if any."""
        for run in reversed(self.runs):
            if run.target.container_id == container_id and run.state is TraceState.RUNNING:
                return run
        return None

    def attach(self, container_id: str, label: str, image: str) -> TraceRun:
        run = TraceRun(Target(label, image, container_id))
        self.runs.append(run)
        try:
            self.backend.attach(container_id, run)
        except Exception as err:  # noqa: BLE001 - any tracer failure is shown, never fatal
            run.ended(f"cannot trace: {err}")
        self.pump()
        return run

    def arm(self, spec: ArmSpec, image: str) -> TraceRun:
        run = TraceRun(Target(spec.label, spec.image or image), state=TraceState.ARMED, from_start=True)
        self.runs.append(run)
        self.arms[id(run)] = spec
        try:
            self.backend.arm(spec, run)
        except Exception as err:  # noqa: BLE001
            run.ended(f"cannot arm: {err}")
        self.pump()
        return run

    def open_run(self, run: TraceRun) -> None:
        self.push_screen(TraceScreen(run))

    @work(thread=True, group="load")
    def load_run(self, path: str) -> None:
        """Open a saved list (ours or the optimizer's) as a new, tracer-less trace."""
        from nydus_top.listfile import ListFileError, load_list

        try:
            loaded = load_list(path)
        except ListFileError as err:
            self.call_from_thread(self.push_screen, MessageDialog("Cannot open the list", [str(err)]))
            return
        self.call_from_thread(self._loaded, path, loaded)

    def _loaded(self, path: str, loaded) -> None:  # noqa: ANN001 - listfile.LoadedList
        image = loaded.meta.image if loaded.meta is not None else ""
        run = TraceRun(Target(f"list {path}", image, path=path), state=TraceState.LOADED, meta=loaded.meta)
        run.items.extend(loaded.entries)
        run.files = len(run.items)
        run.bytes = sum(entry.size or 0 for entry in loaded.entries)
        self.runs.append(run)
        self.open_run(run)
        if loaded.warnings:
            self.push_screen(MessageDialog(f"Loaded {path} with warnings", loaded.warnings))

    # -- app-wide actions ------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_traces(self) -> None:
        if not isinstance(self.screen, TracesScreen):
            self.push_screen(TracesScreen())

    def action_config(self) -> None:
        if not isinstance(self.screen, ConfigScreen):
            self.push_screen(ConfigScreen())

    def action_open_list(self) -> None:
        def opened(path: str | None) -> None:
            if path:
                self.load_run(str(Path(path).expanduser()))

        self.push_screen(PromptDialog("Open a prefetch list", str(self.backend.config.persist_dir) + "/",
                                      hint="ours or the optimizer's: plain list or .csv"), opened)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Traces", "All traces, live and loaded", self.action_traces)
        yield SystemCommand("Open list", "Open a saved prefetch list to curate", self.action_open_list)
        yield SystemCommand("Config", "Effective configuration and its sources", self.action_config)
        yield SystemCommand("Help", "Keys of the current screen", self.action_help)
        for action, title, help_text in getattr(screen, "PALETTE", ()):
            yield SystemCommand(title, help_text, lambda a=action: self.run_action(a, screen))
