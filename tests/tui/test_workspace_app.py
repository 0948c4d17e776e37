"""The app over the session's workspace: screens follow the model, one screen per trace, quitting
with traces that would be lost, merging another trace of the session."""

from __future__ import annotations

from nydus_top.tracerun import TraceState
from nydus_top.screens.trace import TraceScreen
from nydus_top.screens.traces import TracesScreen
from tests.tui.conftest import running
from tests.tui.data import make_backend, startup_trace
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
