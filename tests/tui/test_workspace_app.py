"""The app over the session's workspace: screens follow the model, one screen per trace, quitting
with traces that would be lost, merging another trace of the session."""

from __future__ import annotations

import re

from nydus_top.model.trace import TraceState
from nydus_top.screens.trace import TraceScreen
from testkit.replay_data import make_backend, startup_trace
from tests.tui.conftest import running
from tests.tui.screentext import screen_text


async def test_a_trace_screen_shows_what_happened_while_it_was_covered() -> None:
    backend = make_backend()
    backend.recordings = {"c-job": startup_trace()[:3]}
    async with running(backend) as (app, pilot):
        await pilot.press("down", "down", "a", "c")  # arm the worker's next start
        trace = app.screen
        assert isinstance(trace, TraceScreen) and "armed" in screen_text(app)
        await pilot.press("t")  # the traces list covers it while the worker starts and stops
        await pilot.pause()
        backend.start("c-job")
        app.pump()
        app.workspace.stop(trace.run)
        app.pump()
        await pilot.press("escape")  # back to the trace screen: no key pressed there yet
        await pilot.pause()
        assert app.screen is trace and trace.run.state is TraceState.STOPPED
        text = screen_text(app)
        assert "· stopped" in text and "rows 3" in text and "/usr/sbin/nginx" in text


def stack(app) -> list[str]:
    """The screens above Textual's default one, by class (a trace screen with its run's id)."""
    return [type(s).__name__ + (f"({s.run.id})" if isinstance(s, TraceScreen) else "") for s in app.screen_stack[1:]]


async def test_one_screen_per_trace_and_esc_leads_home_in_at_most_two_presses() -> None:
    async with running() as (app, pilot):
        await pilot.press("enter", "end")  # trace nginx, cursor to its last row
        nginx = app.screen
        await pilot.press("t", "enter")  # its trace already has a screen: back to it
        assert app.screen is nginx and stack(app) == ["ContainersScreen", "TraceScreen(1)"]
        await pilot.press("escape", "down", "enter")  # trace the sidecar
        assert stack(app) == ["ContainersScreen", "TraceScreen(2)"]
        await pilot.press("t", "up", "enter")  # nginx's screen, from the list, as it was left
        assert app.screen is nginx and stack(app) == ["ContainersScreen", "TracesScreen", "TraceScreen(1)"]
        assert nginx.view.cursor == len(nginx.run.items) - 1
        await pilot.press("t")  # the list is below: back to it, not another one
        assert stack(app) == ["ContainersScreen", "TracesScreen"]
        await pilot.press("enter", "escape", "escape")
        assert stack(app) == ["ContainersScreen"]
        await pilot.press("up", "enter")  # Enter on a container whose trace has a screen
        assert app.screen is nginx and stack(app) == ["ContainersScreen", "TraceScreen(1)"]


async def lose_some(pilot) -> None:
    """nginx stopped with an edit, its sidecar tracing, the worker's next start armed."""
    await pilot.press("enter", "S", "home", "d", "escape", "down", "enter", "escape", "down", "a", "c")
    await pilot.pause()


def exits(app) -> list[object]:
    calls: list[object] = []
    app.exit = lambda *args, **kwargs: calls.append(args)
    return calls


async def test_quit_without_anything_to_lose_does_not_ask() -> None:
    async with running() as (app, pilot):
        await pilot.press("enter", "S", "escape")  # stopped, never edited
        quit_calls = exits(app)
        await pilot.press("q")
        assert quit_calls == [()]


async def test_quit_asks_about_running_armed_and_edited_traces(tmp_path) -> None:
    from nydus_top.screens.dialogs import QuitDialog

    async with running(make_backend(tmp_path)) as (app, pilot):
        await lose_some(pilot)
        quit_calls = exits(app)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog) and quit_calls == []
        text = screen_text(app)
        assert "nginx · unsaved edits · 15 rows" in text and "sidecar · tracing · 0 rows" in text
        assert "next start of jobs/batch-x1/worker · armed" in text
        await pilot.press("escape")  # cancel: everything goes on
        assert not isinstance(app.screen, QuitDialog) and quit_calls == []
        await pilot.press("q", "q")  # quit anyway
        assert quit_calls == [()]


async def test_quit_save_all_saves_then_quits(tmp_path) -> None:
    from nydus_top.lists.files import load_list
    from tests.tui.conftest import settle

    async with running(make_backend(tmp_path)) as (app, pilot):
        await lose_some(pilot)
        quit_calls = exits(app)
        await pilot.press("q", "s")
        await settle(pilot)
        assert quit_calls == [()]
        assert len(load_list(tmp_path / "library" / "nginx:1.25").entries) == 15
        assert not app.workspace.is_dirty(app.workspace.runs[0])


async def test_quit_save_all_that_cannot_save_stays(tmp_path) -> None:
    from tests.tui.conftest import settle

    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "nginx:1.25").write_text("/theirs\\n")  # the optimizer's: never overwritten
    async with running(make_backend(tmp_path)) as (app, pilot):
        await lose_some(pilot)
        quit_calls = exits(app)
        await pilot.press("q", "s")
        await settle(pilot)
        assert quit_calls == [] and "Not quit: 1 list could not be saved" in screen_text(app)


async def test_ctrl_c_twice_quits_at_once_whatever_is_unsaved() -> None:
    async with running() as (app, pilot):
        await lose_some(pilot)
        quit_calls = exits(app)
        await pilot.press("ctrl+c")
        assert quit_calls == []
        await pilot.press("ctrl+c")
        assert quit_calls == [()]


async def test_merge_another_trace_of_this_session() -> None:
    from nydus_top.model.records import Access
    from nydus_top.screens.dialogs import MergeDialog
    from testkit.replay_data import STARTUP

    backend = make_backend()
    backend.recordings = {**backend.recordings, "c-side": [Access(0, "/etc/passwd", 1, 1, "open", 9, "envoy"),
                                                           Access(1, "/usr/bin/envoy", 1, 2, "exec", 9, "envoy")]}
    async with running(backend) as (app, pilot):
        await pilot.press("enter", "home", "d", "escape")  # nginx's trace, its first file deleted
        await pilot.press("down", "enter", "m")  # the sidecar's trace: merge
        await pilot.pause()
        assert isinstance(app.screen, MergeDialog)
        assert "default/web-7d9f/nginx · tracing · 15 rows" in screen_text(app)
        await pilot.press("enter")  # the first (only) other trace
        await pilot.pause()
        sidecar = app.screen
        assert isinstance(sidecar, TraceScreen) and sidecar.run.target.label == "default/web-7d9f/sidecar"
        nginx = [path for path, _, _ in STARTUP[1:] if path != "/etc/passwd"]
        assert sidecar.run.items.paths() == ["/etc/passwd", "/usr/bin/envoy", *nginx]
        assert f"merged {len(nginx)} new paths from default/web-7d9f/nginx" in screen_text(app)
        await pilot.press("u")
        assert sidecar.run.items.paths() == ["/etc/passwd", "/usr/bin/envoy"]


async def test_a_list_saved_from_its_screen_is_not_asked_about(tmp_path) -> None:
    from tests.tui.conftest import settle, submit

    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("enter", "S", "home", "d", "s")
        await submit(pilot, str(tmp_path / "curated.list"))
        await settle(pilot)
        assert (tmp_path / "curated.list").exists()
        quit_calls = exits(app)
        await pilot.press("q")
        assert quit_calls == [()]
        await pilot.press("d")  # once more: edited since that save
        quit_calls.clear()
        await pilot.press("q")
        assert quit_calls == [] and "unsaved edits · 14 rows" in screen_text(app)


async def test_the_quit_dialog_counts_one_row_as_one_row(tmp_path) -> None:
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("enter", "S", "home", *["d"] * 15)  # 16 rows, one left
        quit_calls = exits(app)
        await pilot.press("q")
        assert quit_calls == [] and re.search(r"unsaved edits · 1 row\b(?!s)", screen_text(app))
