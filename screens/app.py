"""The nydus-top application: routes keys and screens; the session's traces live in its workspace."""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from nydus_top.lists.files import ListFileError, LoadedList
from nydus_top.model.trace import TraceRun
from nydus_top.text import counted
from nydus_top.workspace.backend import Backend
from nydus_top.workspace.traces import Workspace

from .base import LiveScreen
from .config import ConfigScreen
from .containers import ContainersScreen
from .dialogs import MessageDialog, PromptDialog, QuitDialog
from .diff import diff_lists
from .help import HelpScreen
from .stability import StabilityScreen, open_runs
from .trace import TraceScreen
from .traces import TracesScreen

REFRESH_S = 0.1  # UI ticks: drain trace inboxes and repaint at most this often
CTRL_C_TWICE_S = 2.0  # a second ctrl+c within this many seconds quits without asking


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
        Binding("R", "runs", "Runs of an image", show=False),
    ]

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.workspace = Workspace(backend)  # every trace of the session; screens ask it
        self._node_dirty = True
        self.warnings: deque[str] = deque(maxlen=50)  # from background threads, newest last
        self._ctrl_c = -CTRL_C_TWICE_S  # monotonic time of the last ctrl+c

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
        self.workspace.close()

    def _on_node_event(self, _event: object) -> None:
        """Runs on the NRI thread: only mark dirty; the next tick repaints."""
        self._node_dirty = True

    def pump(self) -> None:
        """One UI tick: move queued trace records into the lists, then repaint what changed."""
        if not self.is_running:  # shutting down: screens are losing their widgets
            return
        changed = self.workspace.drain()
        screen = self.screen
        if isinstance(screen, LiveScreen) and screen.live and screen.on_tick(changed, self._node_dirty):
            self._node_dirty = False

    # -- traces ----------------------------------------------------------------------------

    def open_run(self, run: TraceRun) -> None:
        """Show the run's screen: the one it already has if any (one screen per trace, kept with
        its cursor and search), so the stack stays Containers [+ Traces] + one Trace."""
        self.pump()
        name = f"trace-{run.id}"
        if not self.is_screen_installed(name):
            counted = self.workspace.runset(run)  # a set of runs: its stability view
            self.install_screen(TraceScreen(run) if counted is None else StabilityScreen(run, counted), name)
        screen = self.get_screen(name)
        if screen in self.screen_stack:
            self._pop_until(screen)
        elif isinstance(self.screen, TracesScreen):
            self._route(self._traces_screen(), screen)
        else:
            self._route(screen)

    def _traces_screen(self) -> TracesScreen:
        if not self.is_screen_installed("traces"):
            self.install_screen(TracesScreen(), "traces")
        return self.get_screen("traces", TracesScreen)

    def _pop_until(self, screen: Screen[Any]) -> None:
        while self.screen is not screen:
            self.pop_screen()

    def _route(self, *screens: Screen[Any]) -> None:
        """Make the stack the home screen (Containers) followed by ``screens``, keeping what is
        already in place."""
        stack = self.screen_stack
        home = next(i for i, s in enumerate(stack) if isinstance(s, ContainersScreen))
        kept = 0
        while kept < len(screens) and home + 1 + kept < len(stack) and stack[home + 1 + kept] is screens[kept]:
            kept += 1
        self._pop_until(stack[home + kept])
        for screen in screens[kept:]:
            self.push_screen(screen)

    @work(thread=True, group="load")
    def load_run(self, path: str) -> None:
        """Open a saved list (ours or the optimizer's) as a new, tracer-less trace."""

        try:
            loaded = Workspace.read(path)
        except ListFileError as err:
            self.call_from_thread(self.push_screen, MessageDialog("Cannot open the list", [str(err)]))
            return
        self.call_from_thread(self._loaded, path, loaded)

    def _loaded(self, path: str, loaded: LoadedList) -> None:
        self.open_run(self.workspace.load(path, loaded))
        if loaded.warnings:
            self.push_screen(MessageDialog(f"Loaded {path} with warnings", loaded.warnings))

    # -- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit, asking first when a trace is still running or armed, or has unsaved edits."""
        unsaved = self.workspace.unsaved()
        if not unsaved:
            self.exit()
            return
        if isinstance(self.screen, QuitDialog):
            return
        lines = [f"{item.run.target.label} · {item.why} · {counted(len(item.run.items), 'row')}" for item in unsaved]

        def answered(answer: str | None) -> None:
            if answer == "quit":
                self.exit()
            elif answer == "save":
                self.notify("saving every list…", title="Quit")
                self._save_all_and_quit()

        self.push_screen(QuitDialog(lines), answered)

    @work(thread=True, group="save")
    def _save_all_and_quit(self) -> None:
        failed = self.workspace.save_unsaved()
        self.call_from_thread(self._saved_all, failed)

    def _saved_all(self, failed: list[str]) -> None:
        if not failed:
            self.exit()
            return
        self.push_screen(MessageDialog(f"Not quit: {counted(len(failed), 'list')} could not be saved",
                                       [*failed, "", "save them from their trace screen (s), or quit anyway (q q)"]))

    def action_help_quit(self) -> None:
        """ctrl+c: twice quits at once, whatever would be lost; once says how to quit."""
        now = time.monotonic()
        if now - self._ctrl_c < CTRL_C_TWICE_S:
            self.exit()
            return
        self._ctrl_c = now
        self.notify("q quits (asking about unsaved traces); ctrl+c again quits at once", title="Quit?")

    # -- app-wide actions ------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_traces(self) -> None:
        """The traces list: back to it if it is open below, else on top of this screen."""
        traces = self._traces_screen()
        if traces in self.screen_stack:
            self._pop_until(traces)
        else:
            self.push_screen(traces)

    def action_config(self) -> None:
        if not isinstance(self.screen, ConfigScreen):
            self.push_screen(ConfigScreen())

    def action_open_list(self) -> None:
        def opened(path: str | None) -> None:
            if path:
                self.load_run(str(Path(path).expanduser()))

        self.push_screen(PromptDialog("Open a prefetch list", str(self.backend.config.persist_dir) + "/",
                                      hint="ours or the optimizer's: plain list or .csv", paths=True), opened)

    def action_runs(self) -> None:
        """Open the runs of an image (the selected container's, if any, is the default)."""
        row = getattr(self.screen, "current_row", lambda: None)()
        open_runs(self, getattr(row, "image", ""))

    def action_diff(self) -> None:
        diff_lists(self)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Traces", "All traces, live and loaded", self.action_traces)
        yield SystemCommand("Open list", "Open a saved prefetch list to curate", self.action_open_list)
        yield SystemCommand("Diff two lists", "Files only in one, moved, time deltas", self.action_diff)
        yield SystemCommand("Runs of an image", "Every kept start of an image: stability and consensus",
                            self.action_runs)
        yield SystemCommand("Config", "Effective configuration and its sources", self.action_config)
        yield SystemCommand("Help", "Keys of the current screen", self.action_help)
        for action, title, help_text in getattr(screen, "PALETTE", ()):
            yield SystemCommand(title, help_text, lambda a=action: self.run_action(a, screen))
