"""Convert from the Trace screen: nydusify's output streams into the log; `x` cancels it.

nydusify itself cannot be installed here; tests/lists/fake_nydusify stands in (records its
argv and stdin, then behaves as FAKE_NYDUSIFY_MODE says).
"""

from __future__ import annotations

import json
import os
import re
import select
from pathlib import Path

import pytest
from textual.widgets import Log, Static

from nydus_top.screens.convert import ConvertScreen
from testkit.replay_data import STARTUP, make_backend
from tests.tui.conftest import on_trace, until
from tests.tui.screentext import screen_text

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
        lines = screen.query_one(Log).lines
        assert "prefetch patterns: 15 lines" in "\n".join(lines)
        # each of nydusify's lines with its elapsed time, as the CLI prints them
        ours = [line for line in lines if not line.startswith("nydus-top: ")]
        assert ours and all(re.match(r"\[ *\d+\.\ds\] ", line) for line in ours)
        assert json.loads((record / "argv.json").read_text())[:4] == [
            "convert", "--source", "docker.io/library/nginx:1.25", "--target"]
        assert (record / "stdin").read_text().splitlines() == [p for p, _, _ in STARTUP][1:]


async def test_cancel_kills_nydusify_and_its_children(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "hang")
    async with on_trace(make_backend(record, nydusify=str(FAKE))) as (app, pilot, _):
        await pilot.press("c", "enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: any(line.endswith("s] ready") for line in screen.query_one(Log).lines),
                    what="nydusify to start")
        child = os.pidfd_open(int((record / "child.pid").read_text()))  # readable once it has exited
        await pilot.press("x")
        await until(pilot, lambda: screen.finished, what="the cancel")
        assert status(screen).startswith("conversion cancelled")
        assert select.select([child], [], [], 30)[0] == [child]  # nydusify's own child is gone too
        os.close(child)


async def test_a_missing_nydusify_says_how_to_name_it_and_offers_no_cancel(record: Path) -> None:
    async with on_trace(make_backend(record, nydusify=str(record / "no-such-nydusify"))) as (app, pilot, _):
        await pilot.press("c", "enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: screen.finished, what="the failure")
        await pilot.pause()
        assert "--nydusify PATH or [convert] nydusify" in status(screen)
        text = screen_text(app)
        assert "Cancel conversion" not in text and "Back" in text


async def test_a_list_opened_from_disk_converts_the_image_its_metadata_names(
        record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nydus_top.lists.files import save_list
    from nydus_top.lists.meta import ListMeta
    from nydus_top.model.records import ListedFile
    from tests.tui.conftest import running, submit

    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    saved = record / "demo:1"  # under persist_dir the registry host is gone
    save_list([ListedFile("/bin/demo"), ListedFile("/etc/demo.conf")], saved,
              meta=ListMeta(image="nydus-top.local/demo:1"))
    async with running(make_backend(record, nydusify=str(FAKE))) as (app, pilot):
        await pilot.press("o")
        await submit(pilot, str(saved))
        await pilot.press("c", "enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: screen.finished, what="nydusify to finish")
        assert json.loads((record / "argv.json").read_text())[:5] == [
            "convert", "--source", "nydus-top.local/demo:1", "--target", "nydus-top.local/demo:1-nydus"]
        assert (record / "stdin").read_text().splitlines() == ["/bin/demo", "/etc/demo.conf"]


async def test_an_empty_source_says_why_nothing_happened(record: Path) -> None:
    from nydus_top.screens.trace import TraceScreen
    from tests.tui.conftest import running, submit

    plain = record / "optimizer-result"
    plain.write_text("/bin/sh\n")  # the optimizer's own file: no metadata, no image
    async with running(make_backend(record, nydusify=str(FAKE))) as (app, pilot):
        await pilot.press("o")
        await submit(pilot, str(plain))
        await pilot.press("c")
        await submit(pilot, "")
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        assert str(screen.query_one("#status", Static).render()) == (
            "not converted: no source image given (this list names no image: it has no .nydus-top.json)")
        assert not (record / "argv.json").exists()


async def test_the_output_kept_on_screen_is_bounded(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nydus_top.screens import convert

    monkeypatch.setattr(convert, "MAX_OUTPUT_LINES", 100, raising=False)
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "flood")
    monkeypatch.setenv("FAKE_NYDUSIFY_LINES", "1000")
    async with on_trace(make_backend(record, nydusify=str(FAKE))) as (app, pilot, trace):
        await pilot.press("c", "enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: screen.finished, what="nydusify to finish")
        await until(pilot, lambda: any(line.endswith("s] line 999") for line in screen.query_one(Log).lines),
                    what="the last line")
        lines = screen.query_one(Log).lines
        assert len(lines) <= 100 and not any(line.endswith("s] line 0") for line in lines)


async def test_the_palette_converts_to_estargz_with_ctr_remote(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The palette's eStargz entry runs ctr-remote (the stand-in here) with the record on stdin, then its push."""
    from nydus_top.screens.dialogs import PromptDialog

    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    async with on_trace(make_backend(record, ctr_remote=str(FAKE))) as (app, pilot, trace):
        await app.run_action("convert('estargz')", trace)  # as the palette's entry does
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the source prompt")
        assert app.screen.title_text == "Convert to eStargz with this prefetch list"
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await until(pilot, lambda: screen.finished, what="the conversion to finish")
        assert status(screen).startswith("conversion succeeded")
        assert str(screen.query_one("#argv", Static).render()).endswith(" < record")
        argv = json.loads((record / "argv.json").read_text())  # the last step's: the push
        assert argv[4:6] == ["image", "push"] and argv[-1] == "docker.io/library/nginx:1.25-esgz"
        # each line as the CLI shows it: "[   0.1s] $ ctr-remote ... image push ..." for the second step
        assert any(line.partition("s] ")[2].startswith("$ ") and " image push " in line
                   for line in screen.query_one(Log).lines)
