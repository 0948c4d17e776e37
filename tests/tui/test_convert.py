"""Convert from the Trace screen: nydusify's output streams into the log; `x` cancels it.

nydusify itself cannot be installed here; tests/lists/fake_nydusify stands in (records its
argv and stdin, then behaves as FAKE_NYDUSIFY_MODE says).
"""

from __future__ import annotations

import json
import os
import select
from pathlib import Path

import pytest
from textual.widgets import Log, Static

from nydus_top.screens.convert import ConvertScreen
from tests.tui.conftest import on_trace, until
from tests.tui.data import STARTUP, make_backend

FAKE = Path(__file__).resolve().parent.parent / "lists" / "fake_nydusify"


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(tmp_path))
    return tmp_path


def status(screen: ConvertScreen) -> str:
    return str(screen.query_one("#status", Static).render())


async def test_convert_streams_output_and_feeds_the_list(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    async with on_trace(make_backend(record, nydusify=str(FAKE))) as (app, pilot, trace):
        await pilot.press("d", "c", "enter")  # drop the first entry, convert the image it came from
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: screen.finished, what="nydusify to finish")
        assert status(screen).startswith("conversion succeeded")
        assert "prefetch patterns: 15 lines" in "\n".join(screen.query_one(Log).lines)
        assert json.loads((record / "argv.json").read_text())[:4] == [
            "convert", "--source", "docker.io/library/nginx:1.25", "--target"]
        assert (record / "stdin").read_text().splitlines() == [p for p, _, _ in STARTUP][1:]


async def test_cancel_kills_nydusify_and_its_children(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "hang")
    async with on_trace(make_backend(record, nydusify=str(FAKE))) as (app, pilot, _):
        await pilot.press("c", "enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: "ready" in screen.query_one(Log).lines, what="nydusify to start")
        child = os.pidfd_open(int((record / "child.pid").read_text()))  # readable once it has exited
        await pilot.press("x")
        await until(pilot, lambda: screen.finished, what="the cancel")
        assert status(screen).startswith("conversion cancelled")
        assert select.select([child], [], [], 30)[0] == [child]  # nydusify's own child is gone too
        os.close(child)
