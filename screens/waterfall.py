"""Waterfall: why a start is slow. One row per file of a start in first-access order, under the
link model of :mod:`nydus_top.runs.evaluate`.

Each row: the file's position, its wait, its bytes, and a time line: ``█`` from its first access
spanning the time its bytes take at the link's bandwidth, ``◆`` where the list's prefetch delivers
it (none: the list does not hold it), and the wait after the access as ``━`` (red, with the row,
when it stalls). Opened with ``W`` on a trace (the trace's accesses against its curated list) or on the
stability view (the newest run against the consensus of the other runs at the current share).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from nydus_top.runs import evaluate as ev
from nydus_top.text import counted, human_size, printable

MAX_ROWS = 2000  # rows drawn at most (a note says how many more)
STALL_S = 0.0005  # a wait longer than this is a stall (highlighted)
TIMELINE = 40  # cells of the time line
PATH = 40  # cells of the path column


def timeline(step: ev.Step, scale: float, bandwidth: float, cells: int = TIMELINE) -> Text:
    """The time line of one row (*scale*: seconds per cell)."""

    def cell(t: float) -> int:
        return min(cells - 1, max(0, int(t / scale))) if scale > 0 else 0

    chars = [" "] * cells
    start = cell(step.access_s)
    waited = cell(step.access_s + step.wait_s)
    for i in range(start, waited + 1):
        chars[i] = "━"
    for i in range(start, cell(step.access_s + step.read_bytes / bandwidth) + 1):
        chars[i] = "█"
    if step.arrival_s is not None:
        chars[cell(step.arrival_s)] = "◆"
    line = Text("".join(chars))
    if step.wait_s > STALL_S:
        line.stylize("bold red", start, waited + 1)
    return line


def rows(steps: Sequence[ev.Step], bandwidth: float) -> Text:
    """Every row (at most MAX_ROWS) as one text, stalls in red."""
    shown = steps[:MAX_ROWS]
    end = max((max(s.access_s + max(s.wait_s, s.read_bytes / bandwidth), s.arrival_s or 0.0) for s in shown),
              default=0.0)
    scale = end / TIMELINE if end > 0 else 0.0
    out = Text(no_wrap=True)
    for n, step in enumerate(shown):
        stalled = step.wait_s > STALL_S
        head = (f"{n + 1:>5} {step.wait_s * 1000:>8.1f} {'od' if step.on_demand else '  '} "
                f"{human_size(step.read_bytes):>8} {printable(step.path)[-PATH:]:<{PATH}} ")
        out.append(head, style="red" if stalled else "")
        out.append_text(timeline(step, scale, bandwidth))
        out.append("\n")
    if len(steps) > MAX_ROWS:
        out.append(f"… {len(steps) - MAX_ROWS} more files not drawn\n")
    out.append(f"{'':>5} {'':>8}    {'':>8} {'':<{PATH}} 0{f'{end:.3f} s':>{TIMELINE - 1}}")
    return out


class WaterfallScreen(Screen[None]):
    """A start's files against a list, one row each; escape goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, title: str, steps: list[ev.Step], score: ev.Score, link: ev.Link) -> None:
        super().__init__()
        self.title_text = title
        self.steps = steps
        self.score = score
        self.link = link

    def compose(self) -> ComposeResult:
        s, link = self.score, self.link
        stalls = sum(1 for step in self.steps if step.wait_s > STALL_S)
        yield Static(printable(f" Waterfall · {self.title_text}"), classes="titlebar", markup=False)
        yield Static(f" stall {s.predicted_stall_s:.3f} s ({counted(stalls, 'file')}) · "
                     f"start {s.predicted_start_s:.3f} s · "
                     f"hit {s.file_hit_rate * 100:.1f} % files {s.byte_hit_rate * 100:.1f} % bytes · waste "
                     f"{human_size(s.waste_bytes)} · {link.bandwidth * 8 / 1e6:g} Mbit/s {link.rtt * 1000:g} ms "
                     f"{link.policy}", id="counters", markup=False)
        yield Static(f" {'#':>5} {'wait ms':>8}    {'bytes':>8} {'path':<{PATH}} "
                     "█ read ━ wait ◆ prefetched od: on demand", id="header", markup=False)
        with VerticalScroll(id="waterfall"):
            yield Static(rows(self.steps, link.bandwidth), markup=False)
        yield Footer()
