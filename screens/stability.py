"""Stability: many starts of one image as one list, each file with how stable it is across them.

The list is a TraceList like any trace's (the workspace loads every file of any run, in
consensus order), so the curation keys of the trace screen work unchanged; the rows add, per
file, the share of runs that read it (k/N and a bar), the median and spread of its position and
of its first-access time, and marks: ``~`` unstable (not read by every run, or wandering by more
than a few positions), ``!`` created at runtime in some run. ``F`` keeps the files read in at
least a share of the runs (``auto``: chosen by predicted stall), ``O`` sorts by share (and back); ``s``
saves the consensus. Above the rows, the leave-one-out evaluation at the current share (each run
against the consensus of the others: hit rates, waste, predicted stall; :mod:`nydus_top.runs.evaluate`)
and a small plot of hit rate, list size and stall against the share; ``W`` draws the newest run's
waterfall.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from nydus_top.imageref import ImageRefError
from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import ListExistsError, ListFileError
from nydus_top.model.trace import TraceRun
from nydus_top.model.tracelist import Row
from nydus_top.runs import evaluate as ev
from nydus_top.runs import store as runstore
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, FileStability
from nydus_top.runs.runset import Run, RunSet, below, images_with_runs, is_unstable
from nydus_top.text import counted, human_size, printable
from nydus_top.workspace.backend import ArmSpec
from nydus_top.workspace.traces import MAX_STARTS

from .dialogs import ArmDialog, ConfirmDialog, MessageDialog, PromptDialog
from .trace import TraceScreen
from .traceview import Column, TraceView, header_of, join_cells
from .waterfall import WaterfallScreen

if TYPE_CHECKING:
    from .app import NydusTopApp

BAR = 10  # cells of the share bar
SYNC_EVALUATION = 50_000  # files x runs evaluated at once on opening; more in a worker thread
# No tracer behind the runs; merging other files would leave rows without a stability.
_OFF = frozenset({"follow", "pause", "stop", "flag_runtime", "merge"})
STABILITY_COLUMNS = (Column("marks", "", 3, "<"), Column("#", "#", 5), Column("runs", "runs", 7),
                     Column("share", "share", BAR, "<"), Column("position", "position", 13),
                     Column("first", "first access ms", 17), Column("size", "size", 8))
STABILITY_HIDE_FIRST = ("first", "position", "size", "share", "runs")  # as the view narrows, in this order
HEADER = header_of(STABILITY_COLUMNS)


def share_bar(seen: int, runs: int) -> str:
    """``seen/runs`` as BAR cells, full blocks rounded down (a file of every run fills them all)."""
    full = BAR * seen // runs if runs else 0
    return "█" * full + "░" * (BAR - full)


def stability_cells(position: int, entry: Row, f: FileStability, *, selected: bool, flagged: bool) -> dict[str, str]:
    """A row's cells: marks (* selected, ~ unstable, ! runtime-created), share, medians ± spread."""
    return {
        "marks": ("*" if selected else " ") + ("~" if is_unstable(f) else " ") + ("!" if flagged else " "),
        "#": str(position + 1),
        "runs": f"{f.seen}/{f.runs}",
        "share": share_bar(f.seen, f.runs),
        "position": f"{f.position + 1:.1f}±{f.position_spread}",
        "first": "-" if f.elapsed_us is None else f"{f.elapsed_us / 1000:.1f}±{(f.elapsed_spread_us or 0) / 1000:.1f}",
        "size": human_size(entry.size),
    }


def format_stability(position: int, entry: Row, f: FileStability, *, selected: bool, flagged: bool,
                     columns: tuple[Column, ...] = STABILITY_COLUMNS) -> str:
    """One line under the header of ``columns`` (every column unless told)."""
    cells = stability_cells(position, entry, f, selected=selected, flagged=flagged)
    return join_cells(columns, cells, printable(entry.path))


class StabilityView(TraceView):
    """The rows of a stability list: the trace view's cursor, selection and keys, other columns."""

    COMPONENT_CLASSES = TraceView.COMPONENT_CLASSES | {"stabilityview--unstable", "stabilityview--below"}
    COLUMNS = STABILITY_COLUMNS
    HIDE_FIRST = STABILITY_HIDE_FIRST

    def __init__(self, run: TraceRun, counted: RunSet, *, id: str | None = None) -> None:
        super().__init__(run, id=id)
        self.counted = counted
        self.min_share = DEFAULT_MIN_SHARE  # rows below it are dimmed (after u shows them again)
        self.follow = False

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        items = self.run.items
        if row >= len(items):
            return Strip.blank(width, self.rich_style)
        ident = items.row_id(row)
        entry = items[row]
        f = self.counted.by_path[entry.path]
        look = (ident in items.flagged, ident in self.selected, row == self.cursor and self.has_focus,
                is_unstable(f), below(f, self.min_share))
        key = (ident, row, look, width, scroll_x, self.min_share, self._header)
        strip = self._cache.get(key)
        if strip is None:
            style = self._look(look)
            text = format_stability(row, entry, f, selected=look[1], flagged=look[0], columns=self.columns)
            strip = Strip([Segment(text, style)]).crop_extend(scroll_x, scroll_x + width, style)
            self._cache[key] = strip
        return strip

    def _look(self, look: tuple[bool, bool, bool, bool, bool]) -> Style:
        flagged, selected, cursor, unstable, rare = look
        extra = (("stabilityview--unstable",) if unstable else ()) + (("stabilityview--below",) if rare else ())
        return self._line_style(flagged, selected, cursor, *extra)


class StabilityScreen(TraceScreen):
    """A trace screen over a set of runs: the same curation keys, stability columns, no tracer."""

    BINDINGS = [
        Binding("F", "share", "Min share"),
        Binding("O", "sort_share", "Sort by share"),
        Binding("W", "waterfall", "Waterfall", show=False),
    ]
    PALETTE = [
        *(item for item in TraceScreen.PALETTE if item[0] not in _OFF and item[0] != "waterfall"),
        ("waterfall", "Start-up waterfall", "The newest run against the consensus of the other runs"),
        ("share", "Keep files by share", "Keep the files read in at least this share of the runs"),
        ("sort_share", "Sort by share", "Order by the share of runs that read each file (again: back)"),
    ]

    app: NydusTopApp

    def __init__(self, run: TraceRun, counted: RunSet) -> None:
        super().__init__(run)
        self.counted = counted
        self.by_share = False
        self._counts: tuple[tuple[int, int], tuple[int, int]] = ((-1, -1), (0, 0))
        self.points: list[ev.Point] | None = None  # the leave-one-out sweep over the shares, once computed
        self.summary: ev.Summary | None = None  # the leave-one-out mean at the current share

    def compose(self) -> ComposeResult:
        yield Static(id="title", classes="titlebar", markup=False)
        yield Static(id="counters", markup=False)
        yield Static(" evaluating…", id="evaluation", markup=False)
        yield Static(HEADER, id="header", markup=False)
        yield StabilityView(self.run, self.counted, id="list")
        yield Static(id="detail", markup=False)
        yield Static(id="status", classes="statusbar", markup=False)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Following, pausing, stopping, the upper-dir check and merging are off (see _OFF)."""
        return action not in _OFF and super().check_action(action, parameters)

    @property
    def view(self) -> StabilityView:
        return self.query_one(StabilityView)

    def on_mount(self) -> None:  # then TraceScreen's (Textual calls each class's along the MRO)
        self.view.move_cursor(0)
        self.evaluate()
        self.say(f"files read in ≥ {self.view.min_share:g} of the runs · u shows every file · "
                 "F min share · O sort by share · s saves the consensus")

    def update_counters(self) -> None:
        counted, items = self.counted, self.run.items
        state = "" if counted.complete else " · some runs POSSIBLY INCOMPLETE"
        self.query_one("#title", Static).update(
            printable(f" Stability of {counted.image} · {_runs(counted.runs)}{state}"), layout=False)
        every, unstable = self._tally()
        order = "share" if self.by_share else "consensus"
        self.query_one("#counters", Static).update(
            f" files {len(counted.files)}  rows {len(items)}  in every run {every}  unstable {unstable}  "
            f"runtime-created {len(items.flagged)}  sel {len(self.view.selected)}  order {order}"
            + (f"  excl {len(items.exclusions)}" if items.exclusions else ""),
            layout=False)
        self._show("#detail", self.detail_text())

    def detail_text(self) -> str:
        """The selected file's path uncut, then what the narrow columns hide."""
        items, view = self.run.items, self.view
        if not len(items):
            return ""
        entry = items[view.cursor]
        cells = stability_cells(view.cursor, entry, self.counted.by_path[entry.path], selected=False, flagged=False)
        shown = {c.key for c in view.columns}
        hidden = [f"{c.title or c.key} {cells[c.key]}" for c in STABILITY_COLUMNS
                  if c.key not in shown and c.key != "share"]
        return " " + printable(entry.path) + "".join(f" · {part}" for part in hidden)

    def detail_lines(self) -> list[str]:
        items, cursor = self.run.items, self.view.cursor
        entry = items[cursor]
        cells = stability_cells(cursor, entry, self.counted.by_path[entry.path], selected=False, flagged=False)
        return [f"path   {printable(entry.path)}",
                *(f"{c.title or c.key}: {cells[c.key]}" for c in STABILITY_COLUMNS if c.key != "marks")]

    def _tally(self) -> tuple[int, int]:
        """(rows read in every run, unstable rows), counted again only after the rows changed
        (the counters are redrawn at every cursor move)."""
        items = self.run.items
        key = (items.edits, len(items))
        if self._counts[0] != key:
            files = [self.counted.by_path[path] for path in items.paths()]
            self._counts = (key, (sum(1 for f in files if f.seen == f.runs), sum(1 for f in files if is_unstable(f))))
        return self._counts[1]

    # -- evaluation ---------------------------------------------------------------------------

    @property
    def link(self) -> ev.Link:
        return ev.Link(chunk=self.app.backend.config.granularity)

    def evaluate(self) -> None:
        """The leave-one-out figures at the current share and the sweep over the shares: at once
        for small sets, else in a worker (the panel says evaluating… meanwhile)."""
        table = self.counted.table
        if table is None or not table.runs:
            return
        share, link = self.view.min_share, self.link
        if self.points is not None:
            self._evaluated(self.points, _at(self.points, table, link, share), share)
        elif len(table.paths) * len(table.runs) <= SYNC_EVALUATION:
            self._evaluated(*_evaluation(table, link, share), share)
        else:
            self._evaluate_in_worker(share)

    @work(thread=True, group="evaluate", exclusive=True)
    def _evaluate_in_worker(self, share: float) -> None:
        table = self.counted.table
        assert table is not None
        worker = get_current_worker()
        try:  # cancelled when the screen or the app goes: the sweep stops at its next run
            points, summary = _evaluation(table, self.link, share, lambda: worker.is_cancelled)
        except ev.Cancelled:
            return
        self.app.call_from_thread(self._evaluated, points, summary, share)

    def _evaluated(self, points: list[ev.Point], summary: ev.Summary, share: float) -> None:
        self.points, self.summary = points, summary
        link = self.link
        lines = [f" each run against the others' consensus at ≥ {share:g}: hit {summary.file_hit_rate * 100:.1f} % "
                 f"files, {summary.byte_hit_rate * 100:.1f} % bytes · waste {human_size(round(summary.waste_bytes))}"
                 f" · stall {summary.predicted_stall_s:.3f} s",
                 f" (mean of {_runs(summary.runs)}; {link.bandwidth * 8 / 1e6:g} Mbit/s, rtt {link.rtt * 1000:g} ms, "
                 f"{link.policy}; W: the newest run's waterfall)"]
        plot = ev.knee_plot(points, share)
        notes = [f"  shares {points[0].share:g}…{points[-1].share:g} (^ current)" if points else "",
                 f"  auto (F, then auto): {ev.auto_share(points):g}", "", ""]
        lines += [f" {row}{note}" for row, note in zip(plot, notes, strict=False)]
        self.query_one("#evaluation", Static).update("\n".join(lines), layout=True)

    def action_waterfall(self) -> None:
        """The newest run against the consensus of the other runs at the current share."""
        table = self.counted.table
        if table is None or not table.runs:
            self.say("no runs to draw")
            return
        k = len(table.runs) - 1
        link = self.link
        steps, score = ev.held_out_waterfall(table, k, link, self.view.min_share)
        self.app.push_screen(WaterfallScreen(f"{table.runs[k].name}: the newest of {_runs(len(table.runs))} against "
                                             f"the consensus of the others at ≥ {self.view.min_share:g}",
                                             steps, score, link))

    # -- by share --------------------------------------------------------------------------

    def action_share(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            if text.strip() == "auto":
                table = self.counted.table
                if table is None or not table.runs:
                    self.say("no runs to choose a share by")
                    return
                if self.points is None:  # the worker is still sweeping: never block the UI on it
                    self.say("still evaluating the shares: ask for auto again in a moment")
                    return
                text = f"{ev.auto_share(self.points):g}"
            try:
                share = float(text)
                if not 0.0 < share <= 1.0:
                    raise ValueError
            except ValueError:
                self.say(f"not a share in (0, 1]: {text!r}")
                return
            self.view.min_share = share
            removed = self.app.workspace.keep_share(self.run, share)
            self.edited(f"kept files read in ≥ {share:g} of the runs: {removed} removed (u undoes)")
            self.evaluate()

        self.app.push_screen(PromptDialog("Keep files read in at least this share of the runs",
                                          f"{self.view.min_share:g}",
                                          hint="0.5 = half the runs; auto = the smallest list within 1 % of the "
                                               "best predicted stall; u undoes"), apply)

    def action_sort_share(self) -> None:
        self.by_share = not self.by_share
        moved = self.app.workspace.sort_by_share(self.run, self.by_share)
        order = "share (most runs first)" if self.by_share else "consensus order"
        self.edited(f"sorted by {order}" if moved else f"ordered by {order}: no row moved (they were in that order)")

    # -- saving the consensus ----------------------------------------------------------------

    def save_to(self, path: str, overwrite: bool) -> None:
        self.say(f"saving {counted(len(self.run.items), 'path')}…")
        self._save_consensus(path, overwrite, self.app.workspace.snapshot(self.run))

    @work(thread=True, group="save")
    def _save_consensus(self, path: str, overwrite: bool, snapshot: tuple[array[int], int]) -> None:
        try:  # the workspace writes the consensus's metadata (runs = the run names)
            result = self.app.workspace.save(self.run, path, overwrite=overwrite, snapshot=snapshot)
        except ListExistsError as err:
            self.app.call_from_thread(self._ask_overwrite, path, str(err.path))
            return
        except ListFileError as err:
            self.app.call_from_thread(self.say, str(err))
            return
        self.app.call_from_thread(self._saved, result)

    def _ask_overwrite(self, path: str, existing: str) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.save_to(path, True)
            else:
                self.say("not saved")

        self.app.push_screen(ConfirmDialog(f"{existing} exists. Overwrite it?"), confirmed)


def runs_here(persist_dir: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """(image reference, number of runs) of every image with runs under *persist_dir*. The
    reference is the one its newest run's metadata names (registry host included), which is
    what opens them again; the run store's own name when no run says."""
    root = Path(persist_dir) / runstore.RUNS_DIR
    listed = []
    for key in images_with_runs(persist_dir):
        directory = root / key
        if not directory.is_dir():  # listed by reference rather than by folder
            try:
                directory = runstore.image_dir(persist_dir, key)
            except ImageRefError:
                continue
        runs = runstore.runs_of(directory)
        try:
            meta = listmeta.read(runs[-1]) if runs else None
        except listmeta.MetaError:
            meta = None
        listed.append((meta.image if meta is not None and meta.image else key, len(runs)))
    return listed


def _evaluation(table: ev.Table, link: ev.Link, share: float,
                stop: Callable[[], bool] | None = None) -> tuple[list[ev.Point], ev.Summary]:
    points = ev.sweep(table, link, stop=stop)
    return points, _at(points, table, link, share)


def _at(points: list[ev.Point], table: ev.Table, link: ev.Link, share: float) -> ev.Summary:
    """The leave-one-out mean at *share*: the sweep's when it tried that share."""
    for point in points:
        if abs(point.share - share) < 1e-9:
            return point.mean
    return ev.mean(ev.leave_one_out(table, link, share))


class RunsDialog(ModalScreen[str | None]):
    """Which image's runs to open: one with runs under persist_dir (picked: its full reference
    and how many runs it has), or a reference (typed)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, images: list[tuple[str, int]], default: str) -> None:
        super().__init__()
        self.images = [image for image, _ in images]
        self.counts = [runs for _, runs in images]
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Open the runs of an image", classes="dialog-title")
            yield Static("every recorded start kept in the run store, counted together", classes="dialog-hint")
            if self.images:
                yield Static("images with runs (enter):", markup=False)
                yield OptionList(*(Option(Content(printable(f"{image}  ·  {counted(runs, 'run')}")), id=str(n))
                                   for n, (image, runs) in enumerate(zip(self.images, self.counts, strict=True))),
                                 id="runs-images")
            yield Static("or an image reference:", markup=False)
            yield Input(self.default, placeholder="registry/repo:tag", id="runs-image")
            yield Static("enter open · tab switch · esc cancel", classes="dialog-keys")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.images[int(event.option.id or 0)])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_runs(app: NydusTopApp, default: str = "") -> None:
    """Ask which image, read its runs in a worker, open them as a stability list."""

    persist_dir = app.backend.config.persist_dir

    def chosen(image: str | None) -> None:
        if image:
            _read(app, image)

    app.push_screen(RunsDialog(runs_here(persist_dir), default), chosen)


def _read(app: NydusTopApp, image: str) -> None:
    def read() -> None:
        try:
            runs, warnings = app.workspace.read_runs(app.backend.config.persist_dir, image)
        except (ImageRefError, ListFileError) as err:
            app.call_from_thread(app.push_screen, MessageDialog("Cannot open the runs", [str(err)]))
            return
        app.call_from_thread(_opened, app, image, runs, warnings)

    app.run_worker(read, thread=True, group="load")


def _opened(app: NydusTopApp, image: str, runs: list[Run], warnings: list[str]) -> None:
    if not runs:
        app.push_screen(MessageDialog("No runs", [f"no runs of {image} under {app.backend.config.persist_dir}"]))
        return
    app.open_run(app.workspace.load_runs(image, runs))
    if warnings:
        app.push_screen(MessageDialog(f"Runs of {image} read with warnings", warnings))


def _starts_problem(text: str) -> str:
    """What is wrong with a typed number of starts ("" if nothing)."""
    try:
        starts = int(text)
    except ValueError:
        starts = 0
    return "" if 1 <= starts <= MAX_STARTS else f"not a number of starts from 1 to {MAX_STARTS}: {text}"


def arm_starts(app: NydusTopApp, namespace: str, pod: str, container: str, image: str) -> None:
    """Arm the next N starts of a container or of its image (asked): one run each, kept in the
    run store when it ends; the Traces list shows them counting down."""

    def armed(spec: ArmSpec | None) -> None:
        if spec is None:
            return

        def counted(text: str | None) -> None:
            if text is not None:
                app.workspace.arm(spec, image, starts=int(text))
                app.action_traces()

        app.push_screen(PromptDialog("How many starts?", "10",
                                     hint=f"the next N starts are traced, each kept as a run (1..{MAX_STARTS})",
                                     check=_starts_problem), counted)

    app.push_screen(ArmDialog(namespace, pod, container, image), armed)


def _runs(n: int) -> str:
    return counted(n, "run")  # a method's local ``counted`` (the run set) hides the function there
