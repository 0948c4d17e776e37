"""Fixtures for driving the app headless on deterministic data."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from nydus_top.screens.app import NydusTopApp
from nydus_top.screens.trace import TraceScreen
from testkit.replay import ReplayBackend
from testkit.replay_data import make_backend

SIZE = (110, 30)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (no asyncio plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


@asynccontextmanager
async def running(backend: ReplayBackend | None = None) -> AsyncIterator[tuple[NydusTopApp, Pilot]]:
    app = NydusTopApp(backend or make_backend())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        yield app, pilot


@asynccontextmanager
async def on_trace(backend: ReplayBackend | None = None) -> AsyncIterator[tuple[NydusTopApp, Pilot, TraceScreen]]:
    """The app with the nginx container's trace open (cursor on the first row)."""
    async with running(backend) as (app, pilot):
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        await pilot.press("home")
        yield app, pilot, screen


async def submit(pilot: Pilot, text: str) -> None:
    """Replace the open dialog's input with ``text`` and press Enter (typing long paths is slow)."""
    await pilot.pause()
    pilot.app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await settle(pilot)


async def settle(pilot: Pilot) -> None:
    """Wait for the app's thread workers (save, load, upper-dir checks) and their UI updates."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def until(pilot, condition, timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds (checked after each of its UI ticks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)
