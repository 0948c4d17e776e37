"""Byte ranges in the app: read column, prefetch totals, saved beside the list and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

from nydus_top.lists import meta as listmeta
from nydus_top.screens.dialogs import ConfirmDialog
from nydus_top.screens.trace import TraceScreen
from nydus_top.tracing.range_tracer import RangeCollector, parse_range_line
from testkit.replay_data import make_backend
from tests.tui.conftest import on_trace, settle, submit
from tests.tui.screentext import screen_text

MiB = 1 << 20


async def test_saved_ranges_load_back_with_the_same_totals(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        title = "prefetch 6.5M with ranges / 9.0M whole files"
        assert title in screen_text(app)
        assert "  4.5M    68.0K ▏    read" in screen_text(app)  # libcrypto: 2 blocks read of 4.5M
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "web.list"))
        doc = json.loads((tmp_path / "web.list.ranges.json").read_text())
        files = {f["path"]: f["ranges"] for f in doc["files"]}
        assert files["/lib/x86_64-linux-gnu/libcrypto.so.3"] == [[0, MiB], [2 * MiB, MiB]]
        assert files["/usr/sbin/nginx"] is None and files["/etc/group"] is None  # mapped / no data
        await pilot.press("escape", "o")
        await submit(pilot, str(tmp_path / "web.list"))
        assert isinstance(app.screen, TraceScreen) and app.screen.run.target.path
        # loaded: ranges as saved (rounded), so cert.pem (110 KB of 216 KB) is now whole; the
        # title (cut at the terminal's width by the long path) starts the same totals
        assert "· loaded · prefetch 6.5M" in screen_text(app)
        assert app.screen.run.items.prefetch_totals(MiB)[1:] == screen.run.items.prefetch_totals(MiB)[1:]
        assert "  4.5M     2.0M █▉   -" in screen_text(app)


async def test_the_title_counts_mapped_pages_apart(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        assert "mapped" not in screen_text(app)
        collector = RangeCollector()
        collector.add([parse_range_line(b'{"mapped": "/data/model", "off": 1048576, "len": 65536}')])
        screen.run.ranges_from(collector)
        screen.update_counters()
        await settle(pilot)
        assert " whole files (mapped 64.0K)" in screen_text(app)


async def test_unobserved_mapped_files_are_in_the_title_and_the_saved_metadata(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        collector = RangeCollector()
        collector.add([parse_range_line(b'{"mapped": "/data/model", "off": 0, "len": 8192}'),
                       parse_range_line(b'{"unobserved": "/data/big", "why": "more than 4096 mapped ranges"}')])
        screen.run.ranges_from(collector)
        screen.update_counters()
        await settle(pilot)
        assert screen._prefetch().endswith(" whole files (mapped 8.0K, 1 unobserved)")  # the title, uncut
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "web.list"))
        meta = listmeta.read(tmp_path / "web.list")
        assert meta is not None and meta.mapped == 8192
        assert meta.unobserved == (("/data/big", "more than 4096 mapped ranges"),)


async def test_ranges_unavailable_is_marked_in_the_title_and_said_once(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        screen.run.ranges_unavailable("ranges unavailable: tmpfs (lower layer '/x') has no pre-content events")
        screen.update_counters()
        await settle(pilot)
        text = screen_text(app)
        assert "· tracing · ranges unavailable\n" in text and "prefetch" not in text
        assert "\n ranges unavailable: tmpfs (lower layer '/x') has no pre-content events" in text  # status
        await pilot.press("down")
        await settle(pilot)
        assert "has no pre-content events" in screen_text(app)  # until something else is said
        await pilot.press("u")
        await settle(pilot)
        text = screen_text(app)
        assert "nothing to undo" in text and "pre-content" not in text and "· ranges unavailable" in text


async def test_w_saves_the_recorded_ranges_and_asks_before_overwriting(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("w")
        await submit(pilot, str(tmp_path / "r.json"))
        doc = json.loads((tmp_path / "r.json").read_text())
        assert len(doc["files"]) == 16 and doc["files"][4]["ranges"] == [[0, MiB], [2 * MiB, MiB]]
        assert f"saved 16 paths to {tmp_path / 'r.json'}" in screen_text(app)
        await pilot.press("w")
        await submit(pilot, str(tmp_path / "r.json"))  # the same content: nothing to ask
        assert f"range list already saved, unchanged: {tmp_path / 'r.json'}" in screen_text(app)
        await pilot.press("d", "w")  # other content: never overwritten without asking
        await submit(pilot, str(tmp_path / "r.json"))
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert "not saved" in screen_text(app) and json.loads((tmp_path / "r.json").read_text()) == doc


async def test_a_big_growing_trace_works_out_its_prefetch_totals_at_most_once_a_second(
        tmp_path: Path, monkeypatch) -> None:
    """The totals go over every row: worked out on every tick they made each UI tick of a 100k
    trace cost ~35 ms while ingesting (keys waited behind them)."""
    from nydus_top.model.records import Access
    from nydus_top.model.trace import TraceState
    from nydus_top.screens import trace as trace_screen

    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        items = screen.run.items
        assert screen.run.state is TraceState.RUNNING and items.has_ranges()
        calls = []
        real = items.prefetch_totals
        monkeypatch.setattr(items, "prefetch_totals", lambda g: calls.append(g) or real(g))
        seq = 1000

        def grow(n: int) -> None:
            nonlocal seq
            items.extend([Access(seq + i, f"/data/f{seq + i}", 1, seq + i, "open", 1, "app") for i in range(n)])
            seq += n

        grow(trace_screen.PREFETCH_EVERY_ROWS)
        screen._prefetch_shown = None  # as if the last totals were older than a second
        screen.update_counters()  # past the row count: worked out once...
        assert len(calls) == 1
        for _ in range(5):  # ...and not again on the next ticks of the same second, while it grows
            grow(1000)
            screen.update_counters()
        assert len(calls) == 1
        assert "prefetch" in screen_text(app)
