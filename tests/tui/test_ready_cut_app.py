"""An armed trace cut at a stamped ready line, as the operator sees it: what the tracer handed over
before the line was seen but traced after it leaves the rows, the counters and the selection; the
title says where start-up ends, the status line (once) when and how many files left."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from textual.pilot import Pilot

from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access
from nydus_top.recording.readiness import READY_LINE
from nydus_top.screens.app import NydusTopApp
from nydus_top.screens.trace import TraceScreen
from testkit.replay import ReplayBackend
from testkit.replay_data import STARTUP, make_backend, startup_trace
from tests.tui.conftest import running
from tests.tui.screentext import screen_text

LINE_US = 280_000  # the ready line's stamp, in the trace's time: after the replay's first three files
FIRST_AFTER = Access(3, "/srv/first-batch-after.so", 2_048, 300_000, "open", 7, "worker")
LATE = Access(4, "/srv/after-ready.so", 4_096, 400_000, "open", 7, "worker")


def job_backend() -> ReplayBackend:
    """The replay node whose worker's next start reads the first three files of the replay."""
    backend = make_backend()
    backend.recordings = {"c-job": startup_trace()[:3]}  # 1.5, 138.5 and 275.5 ms
    return backend


@asynccontextmanager
async def armed_job() -> AsyncIterator[tuple[ReplayBackend, NydusTopApp, Pilot, TraceScreen]]:
    """The app with the worker's next start armed (its trace screen on top), and the backend that
    starts it."""
    backend = job_backend()
    async with running(backend) as (app, pilot):
        await pilot.press("down", "down", "a", "c")  # arm the worker's next start
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        yield backend, app, pilot, screen


def end_at_the_ready_line(screen: TraceScreen) -> None:
    """The tracer's side, as the app's backend ends an armed trace whose gate had a stamped line."""
    run = screen.run
    run.meta = replace(run.meta or ListMeta(), cut=READY_LINE, cut_detail="READY", cut_after=LATE.path,
                       cut_us=LATE.elapsed_us)
    run.drop_after(LINE_US)
    run.ended()


async def test_an_armed_trace_cut_at_a_stamped_line_shows_only_its_start_up() -> None:
    async with armed_job() as (backend, app, pilot, screen):
        backend.start("c-job")
        screen.run.records([FIRST_AFTER])  # handed over before the log's poll saw the line
        screen.run.records([LATE])
        app.pump()
        await pilot.press("end", "space")  # the operator selects the last row
        await pilot.pause()
        assert "/srv/after-ready.so" in screen_text(app) and "files 5" in screen_text(app)
        end_at_the_ready_line(screen)
        app.pump()
        await pilot.pause()
        text = screen_text(app)
        assert screen.run.items.paths() == [*(p for p, _, _ in STARTUP[:3]), FIRST_AFTER.path]
        assert "/srv/after-ready.so" not in text
        counters = str(screen.query_one("#counters").render()).strip().split("  ")
        assert {"files 4", "rows 4", "sel 0"} <= set(counters), counters
        title = str(screen.query_one("#title").render())
        assert title.endswith(f"next start of jobs/batch-x1/worker · stopped · start-up ends at {FIRST_AFTER.path}")
        assert status(screen) == "start-up ended at 0.280000s (ready line): 1 file traced after it left the list"


def status(screen: TraceScreen) -> str:
    return str(screen.query_one("#status").render()).strip()


async def test_a_start_cut_at_a_stamped_line_with_nothing_after_it_says_so_once() -> None:
    async with armed_job() as (backend, app, pilot, screen):
        backend.start("c-job")
        screen.run.records([FIRST_AFTER])  # the tracer's first batch after the line: it stays
        app.pump()
        await pilot.pause()
        assert status(screen) == ""
        end_at_the_ready_line(screen)
        app.pump()
        await pilot.pause()
        assert len(screen.run.items) == 4
        said = "start-up ended at 0.280000s (ready line): no file listed was traced after it"
        assert status(screen) == said
        await pilot.press("home", "d", "down")  # the operator's edit says its own line...
        app.pump()
        await pilot.pause()
        assert status(screen) == "deleted 1"  # ...and the counters' updates do not say the cut again over it


async def test_a_cut_made_while_the_operator_looked_elsewhere_is_said_when_the_trace_is_back() -> None:
    async with armed_job() as (backend, app, pilot, screen):
        await pilot.press("escape")  # back to the containers while the start is awaited
        backend.start("c-job")
        screen.run.records([FIRST_AFTER])
        screen.run.records([LATE])
        app.pump()
        end_at_the_ready_line(screen)
        app.pump()
        await pilot.pause()
        assert app.screen is not screen
        await pilot.press("t", "enter")  # the traces, then this one
        await pilot.pause()
        said = "start-up ended at 0.280000s (ready line): 1 file traced after it left the list"
        assert app.screen is screen and status(screen) == said
