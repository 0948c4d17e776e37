"""Save, load and merge round trips through the dialogs, on real files."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access, ListedFile
from nydus_top.model.trace import TraceState
from nydus_top.screens.dialogs import ConfirmDialog, MessageDialog, SaveDialog
from nydus_top.screens.trace import TraceScreen
from nydus_top.text import human_size
from nydus_top.workspace.traces import Workspace
from testkit.replay_data import STARTUP, make_backend, startup_trace
from tests.tui.conftest import on_trace, running, settle, submit, until
from tests.tui.screentext import screen_text

PATHS = [p for p, _, _ in STARTUP]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def test_save_to_the_optimizer_path_then_confirm_overwrite(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("s")
        assert isinstance(app.screen, SaveDialog)
        await pilot.press("enter")
        await settle(pilot)
        target = tmp_path / "library" / "nginx:1.25"
        assert lines(target) == PATHS
        csv = lines(Path(f"{target}.csv"))
        assert csv[0] == "path,size,elapsed" and csv[1] == "/usr/sbin/nginx,1200000,1500"

        await pilot.press("d", "s", "enter")  # second save: asks first
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert lines(target) == PATHS  # declined: untouched
        await pilot.press("s", "enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert lines(target) == PATHS[1:]
        assert isinstance(app.screen, TraceScreen)


async def test_inexpressible_paths_are_left_out_with_a_warning(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    odd = [Access(0, "/ok", 1, 1, "open", 1, "sh"), Access(1, "/bad\nname", 1, 2, "open", 1, "sh"),
           Access(2, "/trailing ", 1, 3, "open", 1, "sh")]
    backend.recordings = {"c-nginx": odd}
    async with on_trace(backend) as (app, pilot, _):
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "out.list"))
        await pilot.pause()
        assert isinstance(app.screen, MessageDialog)
        text = screen_text(app)
        assert "2 warnings" in text and "newline" in text and "whitespace" in text
        assert lines(tmp_path / "out.list") == ["/ok"]


async def test_unwritable_target_reports_one_line_and_keeps_the_list(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("s")
        await submit(pilot, str(blocker / "sub" / "list"))
        await pilot.pause()
        assert "cannot save" in str(screen.query_one("#status").render())
        assert screen.run.items.paths() == PATHS


async def test_load_curate_and_save_back_round_trip(tmp_path: Path) -> None:
    saved = tmp_path / "run1"
    saved.write_text("/bin/sh\n/etc/profile\n/usr/lib/libz.so\n")
    Path(f"{saved}.csv").write_text(
        "path,size,elapsed\n/bin/sh,125 KiB,1.500 ms\n/etc/profile,512 B,2.000 ms\n/usr/lib/libz.so,99,3000\n")
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("o")
        await submit(pilot, str(saved))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.run.state is TraceState.LOADED
        assert screen.run.items.paths() == ["/bin/sh", "/etc/profile", "/usr/lib/libz.so"]
        assert screen.run.items[0].size == 125 * 1024
        assert f"files 3  bytes {human_size(125 * 1024 + 512 + 99)} " in screen_text(app)
        await pilot.press("home", "down", "d", "s", "enter")  # default target: the file it came from
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert lines(saved) == ["/bin/sh", "/usr/lib/libz.so"]
        assert lines(Path(f"{saved}.csv"))[1:] == ["/bin/sh,128000,1500", "/usr/lib/libz.so,99,3000"]


async def test_merge_a_second_run(tmp_path: Path) -> None:
    other = tmp_path / "run2"
    other.write_text("/usr/sbin/nginx\n/opt/extra\n/etc/passwd\n/opt/more\n")
    async with on_trace(make_backend(tmp_path)) as (_, pilot, screen):
        await pilot.press("m")
        await submit(pilot, str(other))
        await pilot.pause()
        assert screen.run.items.paths() == [*PATHS, "/opt/extra", "/opt/more"]
        await pilot.press("u")
        assert screen.run.items.paths() == PATHS


async def test_load_of_a_malformed_file_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,prefetch\n")
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("o")
        await submit(pilot, str(bad))
        await pilot.pause()
        assert not app.workspace.runs and "not a prefetch csv" in screen_text(app)


async def test_paths_that_look_like_markup_are_shown_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "run[" / "i].list"  # as markup, "[/i]" closes a tag never opened
    target.parent.mkdir()
    target.write_text("/old\n")
    async with on_trace(make_backend(tmp_path)) as (app, pilot, _):
        await pilot.press("s")
        await submit(pilot, str(target))
        assert isinstance(app.screen, ConfirmDialog)
        assert any(f"{target} exists" in str(text.render()) for text in app.screen.query(Static))
        await pilot.press("y")
        await settle(pilot)
        assert lines(target) == PATHS


async def _trace_sidecar(app, pilot) -> TraceScreen:
    """Open the trace of the sidecar, whose image lives on a registry with a host and port."""
    screen = app.screen
    while screen.current_row().container != "sidecar":
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, TraceScreen)
    return app.screen


async def test_every_save_writes_the_list_identity_and_open_reads_it_back(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.recordings = {"c-side": startup_trace()}
    async with running(backend) as (app, pilot):
        await _trace_sidecar(app, pilot)
        await pilot.press("s", "enter")
        await settle(pilot)
    target = tmp_path / "tools" / "envoy:v1"  # the optimizer's place: no registry host
    assert lines(target) == PATHS
    meta = listmeta.read(target)
    assert meta is not None
    assert (meta.image, meta.container, meta.container_id, meta.pod) == (
        "registry.local:5000/tools/envoy:v1", "sidecar", "c-side", "default/web-7d9f")
    assert meta.files == len(PATHS) and meta.node and meta.created
    assert not meta.complete
    assert meta.incomplete == "attached to a running container: start-up not traced; kernel queue overflow"

    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("o")
        await submit(pilot, str(target))
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.run.meta == meta
        await pilot.press("c")
        await pilot.pause()
        assert app.screen.query_one(Input).value == "registry.local:5000/tools/envoy:v1"


async def test_a_start_traced_from_its_first_instruction_is_complete(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.recordings = {"c-nginx": [r for r in startup_trace() if isinstance(r, Access)]}
    async with running(backend) as (app, pilot):
        await pilot.press("a")
        await pilot.press("enter")  # arm the next start of this container
        await pilot.pause()
        backend.start("c-nginx")
        await until(pilot, lambda: len(app.screen.run.items) == len(PATHS), what="the replayed start")
        await pilot.press("s", "enter")
        await settle(pilot)
    meta = listmeta.read(tmp_path / "library" / "nginx:1.25")
    assert meta is not None and meta.image == "docker.io/library/nginx:1.25"
    assert meta.complete and meta.incomplete == ""


async def test_merge_records_the_run_and_names_a_different_image(tmp_path: Path) -> None:
    other = tmp_path / "run2"
    save_list([ListedFile("/opt/extra")], other, meta=ListMeta(image="quay.io/other/app:2", complete=False,
                                                              incomplete="mark was late"))
    async with on_trace(make_backend(tmp_path)) as (_, pilot, screen):
        await pilot.press("m")
        await submit(pilot, str(other))
        status = str(screen.query_one("#status", Static).render())
        assert status == (f"merged 1 new path from {other} (its image quay.io/other/app:2 is not this "
                          "list's docker.io/library/nginx:1.25)")
        meta = Workspace.list_meta(screen.run)
        assert meta.runs == (str(other),) and meta.image == "docker.io/library/nginx:1.25"
        assert not meta.complete and f"merged {other}: mark was late" in meta.incomplete


async def test_save_a_range_list_from_the_app(tmp_path: Path) -> None:
    import json

    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("d", "w")  # drop the first entry, then write the range list
        await pilot.pause()
        assert app.screen.query_one(Input).value == str(tmp_path / "library" / "nginx:1.25.ranges.json")
        await submit(pilot, str(tmp_path / "ranges.json"))
        doc = json.loads((tmp_path / "ranges.json").read_text())
        assert doc["version"] == "v1" and [f["path"] for f in doc["files"]] == PATHS[1:]  # ranges: test_ranges_app
        assert str(screen.query_one("#status", Static).render()) == (
            f"saved {len(PATHS) - 1} paths to {tmp_path / 'ranges.json'}")
        await pilot.press("d", "w")
        await submit(pilot, str(tmp_path / "ranges.json"))
        assert isinstance(app.screen, ConfirmDialog)  # never overwrites without asking
        await pilot.press("y")
        await settle(pilot)
        assert len(json.loads((tmp_path / "ranges.json").read_text())["files"]) == len(PATHS) - 2


async def test_end_start_up_at_a_row_and_the_saved_metadata_says_so(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("down", "down", "e")  # start-up ends at the third row
        assert screen.run.items.paths() == PATHS[:3]
        assert f"start-up ends at {PATHS[2]}" in str(screen.query_one("#title", Static).render())
        await pilot.press("s", "enter")
        await settle(pilot)
    target = tmp_path / "library" / "nginx:1.25"
    assert lines(target) == PATHS[:3]
    meta = listmeta.read(target)
    assert meta is not None and (meta.cut, meta.cut_detail, meta.cut_after) == ("operator", PATHS[2], PATHS[2])
    assert meta.cut_us == screen.run.items[2].elapsed_us and meta.cut_us > 0


async def test_w_after_s_says_the_range_list_is_saved_already(tmp_path: Path) -> None:
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "out.list"))
        assert (tmp_path / "out.list.ranges.json").is_file()  # s writes it beside the list
        await pilot.press("w")
        await pilot.pause()
        assert app.screen.query_one(Input).value == str(tmp_path / "out.list.ranges.json")
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)  # identical content: nothing to ask
        assert str(screen.query_one("#status", Static).render()) == (
            f"range list already saved, unchanged: {tmp_path / 'out.list.ranges.json'}")


async def test_a_merge_that_adds_nothing_keeps_the_list_saved_and_names_what_was_excluded(tmp_path: Path) -> None:
    other = tmp_path / "run2"
    other.write_text("/usr/sbin/nginx\n/opt/extra/tool\n")
    async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
        await pilot.press("x", "ctrl+u", *"/opt/extra/*", "enter")
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "out.list"))
        assert not app.workspace.is_dirty(screen.run)
        await pilot.press("m")
        await submit(pilot, str(other))
        await pilot.pause()
        status = str(screen.query_one("#status", Static).render())
        assert status == (f"merged nothing new from {other}; 1 excluded by the exclusions in force "
                          "(/opt/extra/tool)")
        assert not app.workspace.is_dirty(screen.run) and "/opt/extra/tool" not in screen.run.items.paths()
