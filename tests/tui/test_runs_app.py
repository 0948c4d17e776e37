"""Runs in the app: arming the next N starts (counting down, each kept as a run), opening the runs of
an image from disk as a stability list, curating it with the trace keys and saving the consensus."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.lists.files import load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.node import EventKind
from nydus_top.model.records import ListedFile
from nydus_top.model.trace import TraceState
from nydus_top.runs import store as runstore
from nydus_top.screens.dialogs import QuitDialog
from nydus_top.screens.stability import StabilityScreen
from nydus_top.screens.traces import TracesScreen
from testkit.replay_data import STARTUP, make_backend
from tests.tui.conftest import running, settle, submit, until
from tests.tui.screentext import screen_text

NGINX = "docker.io/library/nginx:1.25"
IMAGE = "registry.local:5000/team/app:1"
FIXED = ["/bin/app", "/lib/libc.so", "/etc/app.conf"]


async def test_arming_the_next_n_starts_counts_down_and_keeps_each_start(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, keep_runs=20)
    async with running(backend) as (app, pilot):
        await pilot.press("A", "i")  # nginx's row: any container of its image
        await submit(pilot, "3")
        assert isinstance(app.screen, TracesScreen)
        text = screen_text(app)
        assert text.count("armed") == 3 and f"next start of image {NGINX} (3 of 3)" in text
        await pilot.press("escape")
        assert "armed ×3" in screen_text(app)  # the Containers TRACE column
        for n in range(3):
            backend.start("c-nginx")
            app.pump()
            run = app.workspace.runs[n]
            assert run.state is TraceState.RUNNING
            await pilot.pause()
            left = 2 - n
            if left:
                # the container is traced now; what is left shows on the Traces list
                assert app.workspace.armed_left(run.arm) == left  # type: ignore[arg-type]
            app.workspace.stop(run)
            app.pump()
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(app)
        assert "armed" not in text and text.count("stopped") == 3
    kept = runstore.runs_of(runstore.image_dir(tmp_path, NGINX))
    assert len(kept) == 3 and all(len(load_list(p).entries) == len(STARTUP) for p in kept)


def _keep_runs(persist: Path) -> None:
    for n in range(4):
        paths = [f"/tmp/r{n}", *FIXED, *(["/opt/extra"] if n < 2 else [])]
        runstore.save_run(persist, [ListedFile(p, 100 + i, 1000 * i + n) for i, p in enumerate(paths)],
                          ListMeta(image=IMAGE, container="app"), when=1_700_000_000 + n)


async def test_runs_of_an_image_open_as_a_stability_list_curated_and_saved_as_the_consensus(tmp_path: Path) -> None:
    _keep_runs(tmp_path)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")  # the one image with runs
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        screen = app.screen
        assert isinstance(screen, StabilityScreen)
        assert screen.run.items.paths() == [*FIXED, "/opt/extra"]
        text = screen_text(app)
        assert f"Stability of {IMAGE} · 4 runs" in text and "2/4" in text and "4/4 ██████████" in text
        await pilot.press("u")  # every file of any run
        await pilot.pause()
        assert len(screen.run.items) == 8 and "1/4" in screen_text(app)
        await pilot.press("F")
        await submit(pilot, "0.75")
        assert screen.run.items.paths() == FIXED
        await pilot.press("u", "O")  # every file again, sorted by share
        await pilot.pause()
        assert screen.run.items.paths() == [*FIXED, "/opt/extra", "/tmp/r0", "/tmp/r1", "/tmp/r2", "/tmp/r3"]
        await pilot.press("home", "d")  # curation keys as on any list
        await pilot.press("F")
        await submit(pilot, "0.5")
        assert screen.run.items.paths() == FIXED[1:] + ["/opt/extra"]
        await pilot.press("s")
        await submit(pilot, str(tmp_path / "consensus"))
        await settle(pilot)
        assert "saved 3 paths" in screen_text(app)
    loaded = load_list(tmp_path / "consensus")
    assert [e.path for e in loaded.entries] == FIXED[1:] + ["/opt/extra"]
    assert loaded.meta is not None and loaded.meta.image == IMAGE and len(loaded.meta.runs) == 4


async def test_an_image_without_runs_says_so(tmp_path: Path) -> None:
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await submit(pilot, "team/none:1")
        await settle(pilot)
        assert "no runs of team/none:1" in screen_text(app)


async def test_diff_two_saved_lists_from_the_palette_command(tmp_path: Path) -> None:
    from nydus_top.lists.files import save_list
    from nydus_top.screens.diff import DiffScreen

    a = [ListedFile(f"/f{n:02d}", 1, 1000 * n) for n in range(20)]
    b = [*a[1:12], ListedFile("/new", 1, 5), *a[12:], ListedFile("/f00", 1, 21_000)]  # /f00 moved last
    save_list(a[:-1], tmp_path / "a")  # /f19 only in B
    save_list(b, tmp_path / "b")
    async with running(make_backend(tmp_path)) as (app, pilot):
        app.action_diff()
        await submit(pilot, str(tmp_path / "a"))
        await submit(pilot, str(tmp_path / "b"))
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
        text = screen_text(app)
        assert "19 in both · 0 only in A · 2 only in B · 1 moved by more than 10 · showing all" in text
        assert "+20" in text and "+21.0" in text  # /f00: its shift and first-access delta
        await pilot.press("m")
        await submit(pilot, "0")
        assert "12 moved by more than 0" in screen_text(app)  # /f01../f11 by one, /f00
        await pilot.press("v", "v")
        text = screen_text(app)
        assert "showing only in B" in text and "/new" in text and "/f00" not in text


async def test_a_start_of_n_armed_names_its_container_and_pod_after_it_left_the_node(tmp_path: Path) -> None:
    # A short start is removed from the node model before it ends and is kept: its run still
    # names the container and pod its start reported (not the trace's label and an empty pod).
    backend = make_backend(tmp_path, keep_runs=20)
    async with running(backend) as (app, pilot):
        await pilot.press("A", "c")  # nginx's row: this container by pod and name
        await submit(pilot, "3")
        backend.start("c-nginx")
        app.pump()
        run = app.workspace.runs[0]
        assert run.state is TraceState.RUNNING
        node = backend.node
        container = node.containers["c-nginx"]
        node.container_event(EventKind.CONTAINER_REMOVE, node.pods[container.pod_id], container)
        app.pump()
        app.workspace.stop(run)
        app.pump()
        kept = app.workspace.kept_path(run)
    meta = load_list(kept).meta
    assert meta is not None
    assert (meta.container, meta.pod, meta.image) == ("nginx", "default/web-7d9f", NGINX)


async def test_quit_anyway_keeps_an_armed_start_that_captured_files_as_a_run(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, keep_runs=20)
    async with running(backend) as (app, pilot):
        await pilot.press("a", "c")
        backend.start("c-nginx")
        await until(pilot, lambda: len(app.workspace.runs[0].items) > 0, what="the start's files")
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitDialog) and "tracing, kept as a run" in screen_text(app)
        await pilot.press("q")  # quit anyway
        await pilot.pause()
    [kept] = runstore.runs_of(runstore.image_dir(tmp_path, NGINX))
    assert [e.path for e in load_list(kept).entries] == [path for path, _size, _kind in STARTUP]


async def test_the_diff_of_two_identical_lists_says_there_are_no_differences(tmp_path: Path) -> None:
    from nydus_top.lists.files import save_list
    from nydus_top.screens.diff import DiffScreen

    same = [ListedFile(f"/f{n}", 1, 1000 * n) for n in range(5)]
    save_list(same, tmp_path / "a")
    save_list(same, tmp_path / "b")
    async with running(make_backend(tmp_path)) as (app, pilot):
        app.action_diff()
        await submit(pilot, str(tmp_path / "a"))
        await submit(pilot, str(tmp_path / "b"))
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
        assert "no differences: the same files in the same order" in screen_text(app)


async def test_the_runs_picker_lists_full_references_with_their_counts_and_opens_them(tmp_path: Path) -> None:
    # One component after the registry host ("demo:1"): read back alone it would be Docker Hub's.
    demo = "nydus-top.local/demo:1"
    for n in range(3):
        runstore.save_run(tmp_path, [ListedFile(p, 1, 10 * i) for i, p in enumerate(FIXED)],
                          ListMeta(image=demo, container="demo"), when=1_700_000_000 + n)
    _keep_runs(tmp_path)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        text = screen_text(app)
        assert f"{demo}  ·  3 runs" in text and f"{IMAGE}  ·  4 runs" in text
        await pilot.press("enter")  # the first one listed
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        assert f"Stability of {demo} · 3 runs" in screen_text(app)


async def test_sorting_runs_of_equal_shares_by_share_says_no_row_moved(tmp_path: Path) -> None:
    for n in range(3):
        runstore.save_run(tmp_path, [ListedFile(p, 1, 10 * i) for i, p in enumerate(FIXED)],
                          ListMeta(image=IMAGE, container="app"), when=1_700_000_000 + n)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        await pilot.press("O")
        await pilot.pause()
        text = screen_text(app)
        assert "order share" in text and "ordered by share (most runs first): no row moved" in text


async def test_r_on_the_same_runs_twice_brings_back_one_list_with_its_bytes(tmp_path: Path) -> None:
    _keep_runs(tmp_path)
    async with running(make_backend(tmp_path)) as (app, pilot):
        for _ in range(2):
            await pilot.press("R")
            await pilot.pause()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
            await pilot.press("escape")
            await pilot.pause()
        [run] = app.workspace.runs
        assert run.bytes == 4 * 100 + 101 + 102 + 103 + 104  # every file of any run: /tmp/r0..3, FIXED, /opt/extra
        await pilot.press("t")
        await pilot.pause()
        assert f"runs of {IMAGE} (4)" in screen_text(app) and " 0B " not in screen_text(app)


async def test_the_trace_column_shows_armed_starts_beside_a_live_trace(tmp_path: Path) -> None:
    async with running(make_backend(tmp_path, keep_runs=20)) as (app, pilot):
        await pilot.press("enter")  # trace nginx now
        await pilot.pause()
        await pilot.press("escape", "A", "c")
        await submit(pilot, "3")
        await pilot.press("escape")
        await until(pilot, lambda: "tracing 16 · armed ×3" in screen_text(app), what="the TRACE column")


async def test_the_stability_view_shows_the_leave_one_out_evaluation_and_picks_auto(tmp_path: Path) -> None:
    from nydus_top.runs import evaluate as ev
    from nydus_top.runs.runset import read_runs
    from nydus_top.screens.waterfall import WaterfallScreen

    _keep_runs(tmp_path)
    runs, _ = read_runs(tmp_path, IMAGE)
    table = ev.Table()
    for run in runs:
        table.add(run.name, run.entries)
    link = ev.Link(chunk=make_backend(tmp_path).config.granularity)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        screen = app.screen
        assert isinstance(screen, StabilityScreen)
        expected = ev.mean(ev.leave_one_out(table, link, 0.5))  # what consensus and evaluate print
        assert screen.summary == expected
        text = screen_text(app)
        hit = f"hit {expected.file_hit_rate * 100:.1f} % files"
        assert f"each run against the others' consensus at ≥ 0.5: {hit}" in text
        assert "(mean of 4 runs; 100 Mbit/s, rtt 20 ms, stream" in text
        assert f"stall {expected.predicted_stall_s:.3f} s" in text
        await pilot.press("F")
        await submit(pilot, "auto")
        auto = ev.auto_share(ev.sweep(table, link))
        assert screen.view.min_share == auto
        assert screen.summary == ev.mean(ev.leave_one_out(table, link, auto))
        await pilot.press("W")
        await pilot.pause()
        assert isinstance(app.screen, WaterfallScreen)
        steps, score = ev.held_out_waterfall(table, 3, link, auto)
        assert app.screen.score == score
        assert [s.path for s in app.screen.steps] == [e.path for e in runs[3].entries]


async def test_a_big_set_is_evaluated_in_a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nydus_top.runs import evaluate as ev
    from nydus_top.runs.runset import read_runs
    from nydus_top.screens import stability

    monkeypatch.setattr(stability, "SYNC_EVALUATION", 0)  # every set is "big"
    _keep_runs(tmp_path)
    runs, _ = read_runs(tmp_path, IMAGE)
    table = ev.Table()
    for run in runs:
        table.add(run.name, run.entries)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        screen = app.screen
        assert isinstance(screen, StabilityScreen)
        await until(pilot, lambda: screen.summary is not None, what="the evaluation")
        link = ev.Link(chunk=app.backend.config.granularity)
        assert screen.summary == ev.mean(ev.leave_one_out(table, link, 0.5))
        assert "each run against the others' consensus at ≥ 0.5" in screen_text(app)


async def test_auto_while_the_worker_still_sweeps_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from textual.widgets import Input

    from nydus_top.runs import evaluate as ev
    from nydus_top.screens import stability

    monkeypatch.setattr(stability, "SYNC_EVALUATION", 0)
    release = threading.Event()
    real = ev.sweep

    def held(*args: object, **kwargs: object) -> list[ev.Point]:
        release.wait(30)  # set by the test once it has asked for auto
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "sweep", held)
    _keep_runs(tmp_path)
    async with running(make_backend(tmp_path)) as (app, pilot):
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StabilityScreen), what="the stability screen")
        screen = app.screen
        assert isinstance(screen, StabilityScreen)
        await pilot.press("F")
        await pilot.pause()  # not submit(): it waits for the workers, and this one is held
        app.screen.query_one(Input).value = "auto"
        await pilot.press("enter")
        await pilot.pause()
        assert "still evaluating the shares" in screen_text(app)
        assert screen.view.min_share == 0.5
        release.set()
        await until(pilot, lambda: screen.summary is not None, what="the evaluation")
        await pilot.press("F")
        await submit(pilot, "auto")
        assert screen.view.min_share == ev.auto_share(screen.points or [])
