"""Each curation operation, driven by key presses on the Trace screen."""

from __future__ import annotations

from textual.widgets import Sparkline

from nydus_top.model.records import Access
from nydus_top.model.trace import TraceState
from nydus_top.screens.trace import TraceScreen
from testkit.replay_data import RUNTIME_CREATED, STARTUP, make_backend, startup_trace, synthetic
from tests.tui.conftest import on_trace, running, settle, submit, until
from tests.tui.screentext import screen_text

PATHS = [p for p, _, _ in STARTUP]


def paths(screen: TraceScreen) -> list[str]:
    return screen.run.items.paths()


async def test_enter_attaches_and_lists_the_trace_live() -> None:
    async with on_trace() as (app, pilot, screen):
        assert paths(screen) == PATHS
        assert screen.run.state is TraceState.RUNNING
        text = screen_text(app)
        assert "/usr/sbin/nginx" in text and "files 16" in text and "overflow 1" in text


async def test_delete_entry_and_selection_then_undo_redo() -> None:
    async with on_trace() as (_, pilot, screen):
        await pilot.press("d")
        assert paths(screen) == PATHS[1:]
        await pilot.press("space", "down", "space", "d")  # select the 1st and 3rd of what is left
        assert paths(screen) == [PATHS[2], *PATHS[4:]]
        await pilot.press("u", "u")
        assert paths(screen) == PATHS
        await pilot.press("U")
        assert paths(screen) == PATHS[1:]


async def test_selection_counts_and_acts_on_visible_rows_only() -> None:
    async with on_trace() as (app, pilot, screen):
        await pilot.press("space")  # select /usr/sbin/nginx, then exclude it
        assert "sel 1" in screen_text(app)
        await pilot.press("x")
        await submit(pilot, "/usr/sbin/*")
        assert paths(screen) == PATHS[1:]
        assert "sel 0" in screen_text(app)
        await pilot.press("home", "d")  # nothing selected is shown: d deletes the cursor row
        assert paths(screen) == PATHS[2:]
        assert "deleted 1" in screen_text(app)


async def test_a_bad_regex_message_goes_when_the_search_or_filter_is_cleared() -> None:
    async with on_trace() as (app, pilot, screen):
        await pilot.press("slash")
        await submit(pilot, "(")
        assert "bad regex" in str(screen.query_one("#status").render())
        await pilot.press("slash")
        await submit(pilot, "")
        assert str(screen.query_one("#status").render()) == ""
        await pilot.press("escape")
        await pilot.pause()
        containers = app.screen
        await pilot.press("slash")
        await submit(pilot, "(")
        assert "bad filter regex" in str(containers.query_one("#status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert str(containers.query_one("#status").render()) == ""


async def test_exclude_by_glob_and_regex() -> None:
    async with on_trace() as (_, pilot, screen):
        await pilot.press("x", "ctrl+u", *"/etc/nginx/*", "enter")
        assert not [p for p in paths(screen) if p.startswith("/etc/nginx/")]
        await pilot.press("X", *r".*\.so(\.[0-9]+)*$", "enter")
        assert not [p for p in paths(screen) if ".so" in p]
        assert len(screen.run.items.exclusions) == 2
        await pilot.press("X", *"(", "enter")  # a bad regex changes nothing and says so
        assert "bad regex" in str(screen.query_one("#status").render())
        assert len(screen.run.items.exclusions) == 2


async def test_move_up_down_top_bottom() -> None:
    async with on_trace() as (_, pilot, screen):
        await pilot.press("down", "down", "K")
        assert paths(screen)[:3] == [PATHS[0], PATHS[2], PATHS[1]]
        await pilot.press("J", "J")
        assert paths(screen)[3] == PATHS[2]
        await pilot.press("B")
        assert paths(screen)[-1] == PATHS[2]
        await pilot.press("T")
        assert paths(screen)[0] == PATHS[2]
        assert screen.view.cursor == 0


async def test_search_next_and_previous() -> None:
    async with on_trace() as (_, pilot, screen):
        await pilot.press("slash", *"^/etc/", "enter")
        assert screen.view.cursor == PATHS.index("/etc/nginx/nginx.conf")
        await pilot.press("n")
        assert screen.view.cursor == PATHS.index("/etc/nginx/mime.types")
        await pilot.press("N", "N")
        assert screen.view.cursor == PATHS.index("/etc/localtime")


async def test_flag_and_bulk_prune_runtime_created_files() -> None:
    async with on_trace() as (app, pilot, screen):
        await pilot.press("r")
        await settle(pilot)
        flagged = {screen.run.items[r].path for r in range(len(screen.run.items)) if screen.run.items.is_flagged(r)}
        assert flagged == RUNTIME_CREATED
        assert "flagged 2" in screen_text(app)
        await pilot.press("R")
        assert paths(screen) == [p for p in PATHS if p not in RUNTIME_CREATED]


async def test_follow_pause_and_trace_continues_off_screen() -> None:
    async with on_trace() as (app, pilot, screen):
        run = screen.run
        await pilot.press("p")
        await pilot.pause()
        assert run.paused and "PAUSED" in screen_text(app)
        run.records([Access(99, "/new/while-paused", 1, 9_000_000, "open", 1, "sh")])
        app.pump()
        assert "/new/while-paused" not in paths(screen)
        await pilot.press("p", "escape")  # resume, then leave the screen
        run.records([Access(100, "/new/off-screen", 1, 9_100_000, "open", 1, "sh")])
        app.pump()
        assert paths(screen)[-2:] == ["/new/while-paused", "/new/off-screen"]
        await pilot.press("t")  # the traces list shows it still running
        await pilot.pause()
        assert "tracing" in screen_text(app)


async def test_rate_falls_to_zero_on_the_clock_when_the_trace_goes_idle() -> None:
    backend = make_backend()
    async with on_trace(backend) as (app, pilot, screen):
        await pilot.pause()
        assert "new files/s 7 " in screen_text(app)  # 7 accesses in elapsed second 1, the last complete one
        assert screen.query_one(Sparkline).data[-3:] == [8, 7, 1]
        backend.clock += 3  # three idle seconds: no record arrives
        await until(pilot, lambda: "new files/s 0 " in screen_text(app), what="the rate to decay")
        assert screen.query_one(Sparkline).data[-6:] == [8, 7, 1, 0, 0, 0]


async def test_several_traces_at_once() -> None:
    async with running() as (app, pilot):
        await pilot.press("enter", "escape", "down", "enter")  # nginx, then its sidecar
        assert [r.target.label for r in app.workspace.runs] == ["default/web-7d9f/nginx", "default/web-7d9f/sidecar"]
        assert all(r.state is TraceState.RUNNING for r in app.workspace.runs)
        await pilot.press("escape")
        await pilot.pause()
        assert "tracing 16" in screen_text(app) and "tracing 0" in screen_text(app)


async def test_arm_next_start_of_a_container_then_it_starts() -> None:
    backend = make_backend()
    backend.recordings = {"c-job": startup_trace()[:3]}
    async with running(backend) as (app, pilot):
        await pilot.press("down", "down", "a", "c")  # the created-but-not-started worker
        trace = app.screen
        assert isinstance(trace, TraceScreen) and trace.run.state is TraceState.ARMED
        assert trace.run.target.label == "next start of jobs/batch-x1/worker"
        await pilot.press("escape")
        await pilot.pause()
        assert "armed" in screen_text(app)
        backend.start("c-job")  # containerd's StartContainer for it
        app.pump()
        assert trace.run.state is TraceState.RUNNING and trace.run.target.container_id == "c-job"
        assert trace.run.items.paths() == PATHS[:3]
        await pilot.pause()
        assert "tracing 3" in screen_text(app)


async def test_an_armed_start_whose_mark_was_late_says_possibly_incomplete() -> None:
    backend = make_backend()
    backend.recordings = {"c-job": startup_trace()[5:8]}
    async with running(backend) as (app, pilot):
        await pilot.press("down", "down", "a", "c")
        trace = app.screen
        assert isinstance(trace, TraceScreen)
        await pilot.pause()
        assert "INCOMPLETE" not in str(trace.query_one("#title").render())
        backend.start("c-job", late=True)  # containerd was answered before the mark was in place
        app.pump()
        await pilot.pause()
        assert trace.run.possibly_incomplete and trace.run.state is TraceState.RUNNING
        title = str(trace.query_one("#title").render())
        assert title.endswith("next start of jobs/batch-x1/worker · tracing · POSSIBLY INCOMPLETE: mark was late")
        await pilot.press("S")  # the flag outlives the trace
        app.pump()
        await pilot.pause()
        assert "stopped · POSSIBLY INCOMPLETE" in str(trace.query_one("#title").render())


async def test_containers_filter_sort_and_cursor_stays_on_its_container() -> None:
    async with running() as (app, pilot):
        screen = app.screen
        await pilot.press("down", "down", "down")  # storage/db-0 postgres
        assert screen.current_row().container == "postgres"
        await pilot.press("r")  # reverse: postgres moves to the top, the cursor follows it
        assert [r.container for r in screen.rows][0] == "postgres" and screen.current_row().container == "postgres"
        await pilot.press("slash", *"!library/", "enter")
        assert sorted(r.container for r in screen.rows) == ["sidecar", "worker"]
        await pilot.press("escape")
        assert len(screen.rows) == 4


async def test_trace_progress_rewrites_its_cell_not_the_containers_table() -> None:
    """The TRACE column follows a live trace each tick; only a node change rebuilds the table."""
    backend = make_backend()
    async with running(backend) as (app, pilot):
        await pilot.press("enter", "escape")  # trace nginx, back to Containers
        await pilot.pause()
        screen = app.screen
        rebuilds = []
        screen.rebuild = lambda: rebuilds.append(1)  # type: ignore[method-assign]
        screen._ticks = 1  # away from the once-a-second rebuild that advances ages
        app.workspace.runs[0].records(synthetic(5, start=100))
        app.pump()
        await pilot.pause()
        assert f"tracing {len(PATHS) + 5}" in screen_text(app)
        assert rebuilds == []


async def test_moving_the_top_row_up_says_it_did_not_move() -> None:
    async with on_trace() as (app, pilot, screen):
        edits = screen.run.items.edits
        await pilot.press("K")
        await pilot.pause()
        assert paths(screen) == PATHS and screen.run.items.edits == edits
        assert "not moved: already at the top" in screen_text(app)
        assert not app.workspace.is_dirty(screen.run)
        await pilot.press("down", "K")
        await pilot.pause()
        assert paths(screen)[:2] == [PATHS[1], PATHS[0]] and "moved 1 row" in screen_text(app)
