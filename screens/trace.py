"""Trace: one live (or loaded) trace with counters, a sparkline and the curation keys."""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Footer, Sparkline, Static

from nydus_top.convert import formats
from nydus_top.convert.nydusify import ConversionError
from nydus_top.lists.files import (
    ListExistsError,
    ListFileError,
    LoadedList,
    SaveResult,
    load_list,
    ranges_path,
)
from nydus_top.lists.meta import ListMeta
from nydus_top.model.trace import LineCut, TraceRun, TraceState
from nydus_top.model.tracelist import Exclusion
from nydus_top.recording.readiness import dropped_after
from nydus_top.runs import evaluate as ev
from nydus_top.text import counted, human_size, printable

from .base import LiveScreen
from .convert import ConvertScreen
from .dialogs import ConfirmDialog, MergeDialog, MessageDialog, PromptDialog, SaveDialog
from .traceview import HEADER, TraceView, describe_row
from .waterfall import WaterfallScreen

PREFETCH_EVERY_S = 1.0  # a growing list's prefetch totals are worked out at most this often...
PREFETCH_EVERY_ROWS = 10_000  # ...once it has more rows than this

if TYPE_CHECKING:
    from .app import NydusTopApp

_W = TypeVar("_W", bound=Widget)


class TraceScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("d,delete", "delete", "Delete"),
        Binding("x", "exclude(False)", "Exclude glob"),
        Binding("X", "exclude(True)", "Exclude regex", show=False),
        Binding("K,shift+up", "move(-1)", "Move up", show=False),
        Binding("J,shift+down", "move(1)", "Move down", show=False),
        Binding("T", "move_to(0)", "To top", show=False),
        Binding("B", "move_to(-1)", "To bottom", show=False),
        Binding("u", "undo", "Undo"),
        Binding("U,ctrl+r", "redo", "Redo", show=False),
        Binding("slash", "search", "Search"),
        Binding("n", "find(False)", "Next match", show=False),
        Binding("N", "find(True)", "Previous match", show=False),
        Binding("r", "flag_runtime", "Flag runtime", show=False),
        Binding("R", "prune_flagged", "Prune flagged", show=False),
        Binding("f", "follow", "Follow"),
        Binding("p", "pause", "Pause"),
        Binding("s", "save", "Save"),
        Binding("w", "save_ranges", "Save range list", show=False),
        Binding("m", "merge", "Merge", show=False),
        Binding("S", "stop", "Stop trace", show=False),
        Binding("c", "convert", "Convert", show=False),
        Binding("e", "cut", "End start-up here", show=False),
        Binding("enter,l", "row_detail", "Whole row", show=False),
        Binding("W", "waterfall", "Waterfall", show=False),
    ]
    PALETTE = [
        ("save", "Save list", "Save the curated list (optimizer format + .csv)"),
        ("save_ranges", "Save range list", "JSON v1 range list for nydusify optimize --prefetch-files"),
        ("merge", "Merge list", "Append another run's files that are not in this list"),
        ("exclude(False)", "Exclude by glob", "Remove matching paths, now and later"),
        ("exclude(True)", "Exclude by regex", "Remove matching paths, now and later"),
        ("flag_runtime", "Flag runtime files", "Mark files the container created (upper dir only)"),
        ("prune_flagged", "Prune flagged", "Remove all flagged files"),
        ("stop", "Stop trace", "Stop the tracer; the list stays"),
        ("cut", "End start-up here", "Cut the list after the cursor's row; later files stay out"),
        ("convert", "Convert image", "Convert to the configured format ([convert] format) with this list first"),
        ("convert('nydusify')", "Convert image to nydus", "Run nydusify convert with this list as prefetch patterns"),
        ("convert('estargz')", "Convert image to eStargz",
         "ctr-remote image convert --estargz with this list, then push"),
        ("convert('zstdchunked')", "Convert image to zstd:chunked",
         "ctr-remote image convert --zstdchunked with this list, then push"),
        ("waterfall", "Start-up waterfall", "This start's files in first-access order against the list: waits, "
                      "prefetch arrivals, stalls"),
    ]

    app: NydusTopApp

    def __init__(self, run: TraceRun) -> None:
        super().__init__()
        self.run = run
        self.search: re.Pattern[str] | None = None
        self._ranges_said = False
        self._line_cut_said: LineCut | None = None  # the run's line_cut last said in the status line
        self._prefetch_shown: tuple[float, str] | None = None  # (when, text) of the prefetch totals
        self._shown: dict[str, str] = {}  # selector -> text last shown
        self._widgets: dict[str, Widget] = {}  # looked-up widgets by selector or type name

    def compose(self) -> ComposeResult:
        yield Static(id="title", classes="titlebar", markup=False)
        yield Static(id="counters", markup=False)
        yield Sparkline(self.run.sparkline_data(), id="rate")
        yield Static(HEADER, id="header", markup=False)
        yield TraceView(self.run, id="list")
        yield Static(id="detail", markup=False)
        yield Static(id="status", classes="statusbar", markup=False)
        yield Footer()

    @property
    def view(self) -> TraceView:
        return self._widget(TraceView)

    def _widget(self, kind: type[_W], selector: str = "") -> _W:
        """A widget of this screen, looked up once (a CSS query per key press adds up)."""
        key = selector or kind.__name__
        widget = self._widgets.get(key)
        if not isinstance(widget, kind):  # not looked up yet
            widget = self._widgets[key] = self.query_one(selector, kind) if selector else self.query_one(kind)
        return widget

    def on_mount(self) -> None:
        self.app.workspace.remember_identity(self.run)
        self.view.focus()
        self.app.pump()
        self.view.rows_changed()
        self.update_counters()

    def on_tick(self, changed: set[int], _node_dirty: bool) -> bool:
        if self.run.id in changed:
            self.app.workspace.remember_identity(self.run)
            self.resync()
        return False

    def resync(self) -> None:
        self.view.rows_changed()
        self.update_counters()

    def on_trace_view_cursor_moved(self) -> None:
        self.update_counters()

    def on_trace_view_columns_changed(self) -> None:
        self._show("#header", self.header_text())
        self.update_counters()

    def header_text(self) -> str:
        return self.view.header()

    # -- the selected row, whole -----------------------------------------------------------

    def detail_text(self) -> str:
        """The detail line: the selected row's path uncut, then what the narrow columns hide."""
        items, view = self.run.items, self.view
        if not len(items):
            return ""
        entry = items[view.cursor]
        shown = {c.key for c in view.columns}
        extra = []
        if "comm" not in shown and entry.comm:
            extra.append(printable(entry.comm))
        if "pid" not in shown and entry.pid:
            extra.append(f"pid {entry.pid}")
        if "size" not in shown:
            extra.append(f"size {human_size(entry.size)}")
        if "read" not in shown and items.read_bytes(view.cursor) is not None:
            extra.append(f"read {human_size(items.read_bytes(view.cursor))}")
        return " " + printable(entry.path) + "".join(f" · {part}" for part in extra)

    def detail_lines(self) -> list[str]:
        items, cursor = self.run.items, self.view.cursor
        return describe_row(cursor, items[cursor], items.read_bytes(cursor))

    def action_row_detail(self) -> None:
        if len(self.run.items):
            self.app.push_screen(MessageDialog(f"Row {self.view.cursor + 1}", self.detail_lines()))

    # -- display ---------------------------------------------------------------------------

    def update_counters(self) -> None:
        run, view = self.run, self.view
        state = run.state.value + (f": {run.error}" if run.error else "")
        if run.possibly_incomplete:
            state += " · POSSIBLY INCOMPLETE: mark was late"
        cut = run.items.cut[0] if run.items.cut else (run.meta.cut_after if run.meta and run.meta.cut else "")
        if cut:
            state += f" · start-up ends at {cut}"
        self._show("#title", printable(f" Trace {run.target.label} · {state}") + self._prefetch())
        rates = run.sparkline_data()
        flags = []
        if view.follow:
            flags.append("FOLLOW")
        if run.paused:
            flags.append(f"PAUSED, {counted(run.queued, 'batch', 'batches')} waiting" if run.queued else "PAUSED")
        if self.search is not None:
            flags.append(f"/{self.search.pattern}")
        flagged = len(run.items.flagged)
        self._show(
            "#counters",
            f" files {run.files}  bytes {human_size(run.bytes)}  new files/s {run.events_per_second()}  "
            f"overflow {len(run.items.overflows)}  rows {len(run.items)}  sel {len(view.selected)}"
            + (f"  flagged {flagged}" if flagged else "")
            + (f"  excl {len(run.items.exclusions)}" if run.items.exclusions else "")
            + (f"  [{' '.join(flags)}]" if flags else ""),
        )
        self._widget(Sparkline).data = rates
        self._show("#detail", self.detail_text())
        self._say_line_cut()

    def _say_line_cut(self) -> None:
        """Once the run was cut at a stamped ready line (its ``line_cut``, set at a drain): when, and
        how many files traced after it left the list, said once in the status line."""
        cut = self.run.line_cut
        if cut is not None and cut is not self._line_cut_said:
            self._line_cut_said = cut
            self.say(dropped_after(cut.until_us, cut.files))

    def _show(self, selector: str, text: str) -> None:
        """Set a one-line Static's text; an unchanged text costs no repaint."""
        if self._shown.get(selector) != text:
            self._shown[selector] = text
            self._widget(Static, selector).update(text, layout=False)

    def _prefetch(self) -> str:
        """" · prefetch X with ranges / Y whole files" once there are ranges; when the range tracer
        cannot run, a mark here and its reason once in the status line."""
        items = self.run.items
        if self.run.ranges_error:
            if not self._ranges_said:
                self._ranges_said = True
                self.say(self.run.ranges_error)
            return " · ranges unavailable"
        if not items.has_ranges():
            return ""
        # The totals go over every row: on a big list that is still growing they are worked out
        # again at most once a second, not on every tick (keys stay responsive while ingesting).
        now = time.monotonic()
        shown = self._prefetch_shown
        if (shown is not None and self.run.state is TraceState.RUNNING and len(items) > PREFETCH_EVERY_ROWS
                and now - shown[0] < PREFETCH_EVERY_S):
            return shown[1]
        _known, with_ranges, whole = items.prefetch_totals(self.app.backend.config.granularity)
        text = f" · prefetch {human_size(with_ranges)} with ranges / {human_size(whole)} whole files"
        mapped, unseen, cached = self.run.mapped_bytes(), len(self.run.mapped_unobserved()), self.run.cached_pages()[0]
        if mapped or unseen or cached:  # pages of mapped files, counted apart (also in the ranges)
            text += f" (mapped {human_size(mapped)}" + (f" + {human_size(cached)} cached" if cached else "")
            text += f", {unseen} unobserved)" if unseen else ")"
        self._prefetch_shown = (now, text)
        return text

    def say(self, text: str) -> None:
        """A status line; it may hold paths, names and errors: shown escaped, never as markup."""
        self._widget(Static, "#status").update(Text(printable(text)), layout=False)

    def edited(self, text: str) -> None:
        self.view.forget_hidden()
        self.view.rows_changed()
        self.update_counters()
        self.say(text)

    # -- curation --------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_delete(self) -> None:
        view = self.view
        rows = view.selection_rows()
        removed = self.run.items.delete(rows)
        view.selected.clear()
        if rows:
            view.move_cursor(min(rows))
        self.edited(f"deleted {removed}")

    def action_cut(self) -> None:
        row = self.view.cursor
        removed = self.run.items.cut_after(row)
        if row >= len(self.run.items):
            self.edited("nothing to cut: no row here")
            return
        self.edited(printable(f"start-up ends at {self.run.items[row].path}: cut {counted(removed, 'later row')}"))

    def action_exclude(self, regex: bool) -> None:
        def apply(text: str | None) -> None:
            if not text:
                return
            exclusion = Exclusion(text, regex)
            try:
                removed = self.run.items.exclude(exclusion)
            except re.error as err:
                self.say(f"bad regex: {err}")
                return
            self.edited(f"excluded {removed} matching {exclusion}")

        kind = "regex (re.match on the path)" if regex else "glob (* matches across /)"
        path = self.current_path()
        self.app.push_screen(PromptDialog(f"Exclude by {kind}", "" if regex else path,
                                          hint="matching rows go now, and later ones never show"), apply)

    def action_move(self, delta: int) -> None:
        view = self.view
        rows = view.selection_rows()
        if not rows:
            return
        moved = self.run.items.move(rows, min(rows) + delta)
        self._after_move(rows, moved, "top" if delta < 0 else "bottom")

    def action_move_to(self, where: int) -> None:
        rows = self.view.selection_rows()
        if not rows:
            return
        moved = self.run.items.move(rows, 0 if where == 0 else len(self.run.items))
        self._after_move(rows, moved, "top" if where == 0 else "bottom")

    def _after_move(self, rows: list[int], moved: list[int], end: str) -> None:
        if moved and moved == sorted(rows):  # already there: nothing moved, no undo step
            self.say(f"not moved: already at the {end}")
            return
        if moved:
            self.view.follow = False
            self.view.move_cursor(moved[0])
        self.edited(f"moved {counted(len(moved), 'row')}")

    def action_undo(self) -> None:
        self.edited("undone" if self.run.items.undo() else "nothing to undo")

    def action_redo(self) -> None:
        self.edited("redone" if self.run.items.redo() else "nothing to redo")

    def action_search(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            if not text:
                self.search = None
                self.say("")
                self.update_counters()
                return
            try:
                self.search = re.compile(text)
            except re.error as err:
                self.say(f"bad regex: {err}")
                return
            self.action_find(False, start_offset=0)

        self.app.push_screen(PromptDialog("Search paths (regex)", self.search.pattern if self.search else ""), apply)

    def action_find(self, backwards: bool, start_offset: int = 1) -> None:
        if self.search is None:
            self.say("no search: press /")
            return
        view = self.view
        start = view.cursor + (-start_offset if backwards else start_offset)
        row = self.run.items.find(self.search, start, backwards)
        if row is None:
            self.say(f"no match for /{self.search.pattern}")
        else:
            view.move_cursor(row)
            self.say(f"match at {row + 1}")
        self.update_counters()

    def action_flag_runtime(self) -> None:
        cid = self.run.target.container_id
        if not cid:
            self.say("no container behind this list: nothing to compare with")
            return
        self.say("checking which files the container created…")
        self._flag_runtime(cid, self.run.items.paths())

    @work(thread=True, exclusive=True, group="flag")
    def _flag_runtime(self, container_id: str, paths: list[str]) -> None:
        try:
            created = self.app.backend.runtime_created(container_id, paths)
        except OSError as err:
            self.app.call_from_thread(self.say, f"cannot read the container's upper dir: {err}")
            return
        self.app.call_from_thread(self._flagged, created)

    def _flagged(self, created: set[str]) -> None:
        count = self.run.items.set_flags(created)
        self.edited(f"flagged {counted(count, 'file')} created at runtime (R prunes them)")

    def action_prune_flagged(self) -> None:
        self.edited(f"pruned {self.run.items.prune_flagged()} flagged")

    def action_follow(self) -> None:
        view = self.view
        if view.follow:
            view.follow = False
        else:
            view.move_cursor(len(self.run.items) - 1, follow=True)
        self.update_counters()

    def action_pause(self) -> None:
        self.run.paused = not self.run.paused
        self.update_counters()
        if not self.run.paused:
            self.app.pump()

    def action_stop(self) -> None:
        if self.app.workspace.stop(self.run):
            self.say("stopping the trace; the list stays")

    def current_path(self) -> str:
        items = self.run.items
        return items[self.view.cursor].path if len(items) else ""

    # -- save / merge ----------------------------------------------------------------------

    def default_save_path(self) -> tuple[str, str]:
        """(path, note): where it was saved or came from, else the optimizer's result path."""
        return self.app.workspace.default_save_path(self.run)

    def action_save(self) -> None:
        config = self.app.backend.config
        default, note = self.default_save_path()

        def chosen(path: str | None) -> None:
            if path:
                self.save_to(str(Path(path).expanduser()), bool(config.overwrite))

        self.app.push_screen(SaveDialog(default, len(self.run.items), readable=bool(config.readable), note=note),
                             chosen)

    def save_to(self, path: str, overwrite: bool) -> None:
        self.say(f"saving {counted(len(self.run.items), 'path')}…")
        self.app.workspace.remember_identity(self.run)
        self._save(path, overwrite, self.app.workspace.snapshot(self.run), self.app.workspace.list_meta(self.run))

    @work(thread=True, group="save")
    def _save(self, path: str, overwrite: bool, snapshot: tuple[array[int], int], meta: ListMeta) -> None:
        try:
            result = self.app.workspace.save(self.run, path, overwrite=overwrite, snapshot=snapshot, meta=meta)
        except ListExistsError as err:
            self.app.call_from_thread(self._confirm_overwrite, path, str(err.path), self.save_to)
            return
        except ListFileError as err:
            self.app.call_from_thread(self.say, str(err))
            return
        self.app.call_from_thread(self._saved, result)

    def _confirm_overwrite(self, path: str, existing: str, save: Callable[[str, bool], None]) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                save(path, True)
            else:
                self.say("not saved")

        self.app.push_screen(ConfirmDialog(f"{existing} exists. Overwrite it?"), confirmed)

    def _saved(self, result: SaveResult) -> None:
        written = f"saved {counted(result.written, 'path')} to {', '.join(map(str, result.paths))}"
        self.say(written)
        if result.warnings:
            self.app.push_screen(MessageDialog(f"Saved with {counted(len(result.warnings), 'warning')}",
                                               [written, "", *result.warnings]))

    def action_waterfall(self) -> None:
        """The trace's accesses (every file it saw, in first-access order) against its curated list."""
        items = self.run.items
        ranges = items.ranges() if items.has_ranges() else None
        start = sorted(items.entries(range(items.seen)),
                       key=lambda e: e.elapsed_us if e.elapsed_us is not None else float("inf"))
        table = ev.Table()
        table.add(self.run.target.label, start, ranges)
        link = ev.Link(chunk=self.app.backend.config.granularity)
        steps, score = ev.waterfall(table, 0, items.entries(), ranges, link)
        self.app.push_screen(WaterfallScreen(f"{self.run.target.label}: its {counted(items.seen, 'file')} against the "
                                             f"list ({counted(len(items), 'file')})", steps, score, link))

    def action_save_ranges(self) -> None:
        default = str(ranges_path(self.default_save_path()[0]))

        def chosen(path: str | None) -> None:
            if path:
                self.save_ranges_to(str(Path(path).expanduser()), False)

        granularity = self.app.backend.config.granularity
        self.app.push_screen(PromptDialog("Save a range list", default,
                                          hint="JSON v1 for nydusify optimize --prefetch-files: recorded ranges "
                                               f"rounded out to {granularity} bytes ([ranges] granularity), "
                                               "whole files where none are known", paths=True), chosen)

    def save_ranges_to(self, path: str, overwrite: bool) -> None:
        self.say(f"saving a range list of {counted(len(self.run.items), 'path')}…")
        self._save_ranges(path, overwrite, self.run.items.frozen_rows())

    @work(thread=True, group="save")
    def _save_ranges(self, path: str, overwrite: bool, rows: array[int]) -> None:
        try:
            result = self.app.workspace.save_range_list(self.run, path, rows, overwrite=overwrite)
        except ListExistsError as err:
            if self.app.workspace.range_list_unchanged(self.run, path, rows):
                self.app.call_from_thread(self.say, f"range list already saved, unchanged: {path}")
            else:
                self.app.call_from_thread(self._confirm_overwrite, path, str(err.path), self.save_ranges_to)
            return
        except ListFileError as err:
            self.app.call_from_thread(self.say, str(err))
            return
        self.app.call_from_thread(self._saved, result)

    def action_merge(self) -> None:
        workspace = self.app.workspace

        def chosen(choice: int | str | None) -> None:
            other = workspace.get(choice) if isinstance(choice, int) else None
            if other is not None:
                excluded = self.run.items.excluded_of(other.items.entries())
                added = workspace.merge(self.run, other)
                self.edited(printable(f"merged {counted(added, 'new path')} from {other.target.label}"
                                      + _excluded_note(excluded)))
            elif isinstance(choice, str):
                self.say(f"loading {choice}…")
                self._load_merge(str(Path(choice).expanduser()))

        others = [(run.id, f"{run.target.label} · {run.state.value} · {counted(len(run.items), 'row')}")
                  for run in workspace.runs if run is not self.run]
        self.app.push_screen(MergeDialog(others, self.default_save_path()[0]), chosen)

    @work(thread=True, group="load")
    def _load_merge(self, path: str) -> None:
        try:
            loaded = load_list(path)
        except ListFileError as err:
            self.app.call_from_thread(self.say, str(err))
            return
        self.app.call_from_thread(self._merge, path, loaded)

    def _merge(self, path: str, loaded: LoadedList) -> None:
        excluded = self.run.items.excluded_of(loaded.entries)
        added = self.app.workspace.merge(self.run, loaded.entries, loaded.ranges)
        if not added and loaded.ranges is None:  # nothing new: the list and its identity stay as they were
            self.say(printable(f"merged nothing new from {path}{_excluded_note(excluded)}"))
            return
        mine, theirs = self.app.workspace.list_meta(self.run), loaded.meta
        note = ""
        if theirs is not None and theirs.image and mine.image and theirs.image != mine.image:
            note = f" (its image {theirs.image} is not this list's {mine.image})"
        meta = self.run.meta or ListMeta()
        if theirs is not None and not theirs.complete:
            reason = f"merged {path}: {theirs.incomplete or 'incomplete'}"
            meta = replace(meta, complete=False, incomplete="; ".join(filter(None, (meta.incomplete, reason))))
        if not meta.image and theirs is not None:
            meta = replace(meta, image=theirs.image, digest=theirs.digest)
        self.run.meta = replace(meta, runs=(*meta.runs, path))
        self.edited(printable(f"merged {counted(added, 'new path')} from {path}{note}{_excluded_note(excluded)}"))

    # -- conversion ------------------------------------------------------------------------

    def action_convert(self, fmt: str = "") -> None:
        config = self.app.backend.config
        fmt = fmt or config.convert_format
        self.app.workspace.remember_identity(self.run)

        image = self.app.workspace.list_meta(self.run).image

        def chosen(source: str | None) -> None:
            if source is None:  # esc
                return
            source = source.strip()
            if not source:
                why = "" if image else (" (this list names no image: it has no .nydus-top.json)"
                                        if self.run.state is TraceState.LOADED
                                        else " (its container's image is unknown)")
                self.say(f"not converted: no source image given{why}")
                return
            try:
                conversion, warnings = formats.prepare(config, fmt, source, self.run.items.entries())
            except ConversionError as err:
                self.say(str(err))
                return
            self.app.push_screen(ConvertScreen(conversion, source, warnings, fed=formats.input_name(fmt)))

        template = {"estargz": config.estargz_target, "zstdchunked": config.zstdchunked_target}.get(
            fmt, config.target_template)
        self.app.push_screen(PromptDialog(f"Convert to {formats.TITLES.get(fmt, fmt)} with this prefetch list", image,
                                          hint=f"source image; target from the template {template}",
                                          placeholder="registry/repo:tag"), chosen)


def _excluded_note(excluded: list[str]) -> str:
    """"; 2 excluded (/a, /b)": the merged paths an exclusion in force keeps out (a few named)."""
    if not excluded:
        return ""
    named = ", ".join(excluded[:3]) + (", …" if len(excluded) > 3 else "")
    return f"; {len(excluded)} excluded by the exclusions in force ({named})"
