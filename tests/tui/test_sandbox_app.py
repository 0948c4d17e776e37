"""The app on the sandbox node: arm the demo image's next start, trace it, save, compare.

Real containerd (1.7 and 2.1) with NRI, the real fanotify tracer and overlayfs; keys drive the app.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot

from nydus_top.config import default_config
from nydus_top.lists import meta as listmeta
from nydus_top.model.node import EventKind
from nydus_top.model.trace import TraceState
from nydus_top.screens.app import NydusTopApp
from nydus_top.screens.containers import ContainersScreen
from nydus_top.screens.dialogs import ArmDialog
from nydus_top.screens.trace import TraceScreen
from nydus_top.workspace.backend import ArmSpec
from nydus_top.workspace.live import LiveBackend
from sandbox import images
from tests.tui.conftest import SIZE, settle, until

pytestmark = pytest.mark.every_containerd


@asynccontextmanager
async def app_on_node(sandbox_node, tmp_path: Path, plugin: str, index: str,
                      **backend_args: float) -> AsyncIterator[tuple[NydusTopApp, Pilot]]:
    """The app on a live backend connected to the sandbox node, once containerd has synchronised."""
    config = replace(default_config(), persist_dir=tmp_path, nri_socket=Path(sandbox_node.nri_socket),
                     plugin_name=plugin, plugin_index=index, containerd_address=Path(sandbox_node.containerd_socket))
    backend = LiveBackend(config, **backend_args)
    synced = threading.Event()
    backend.node.subscribe(lambda event: event.kind is EventKind.SYNC and synced.set())
    backend.start()
    app = NydusTopApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        assert await asyncio.to_thread(synced.wait, 30), "no NRI Synchronize from containerd"
        yield app, pilot


async def arm_image_of(app: NydusTopApp, pilot: Pilot, name: str, container_id: str) -> TraceScreen:
    """Filter the Containers screen down to ``name`` and arm the next start of its image."""
    screen = app.screen
    assert isinstance(screen, ContainersScreen)
    await pilot.press("slash", *name, "enter")
    await until(pilot, lambda: [r.id for r in screen.rows] == [container_id], what="the demo row")
    await pilot.press("a")
    assert isinstance(app.screen, ArmDialog)
    await pilot.press("i")  # any container of the demo image
    trace = app.screen
    assert isinstance(trace, TraceScreen) and trace.run.state is TraceState.ARMED
    return trace


async def test_arm_trace_save_the_demo_start(sandbox_node, tmp_path: Path) -> None:
    first = sandbox_node.run_demo(name="tui-demo-a")
    second = None
    try:
        async with app_on_node(sandbox_node, tmp_path, "nydus-top-tui", "95") as (app, pilot):
            trace = await arm_image_of(app, pilot, "tui-demo-a", first.container_id)

            second = await asyncio.to_thread(sandbox_node.run_demo, "tui-demo-b")
            run = trace.run
            await until(pilot, lambda: set(images.DEMO_STARTUP_FILES) <= set(run.items.paths()),
                        what="the demo's start-up files in the trace")
            assert run.state is TraceState.RUNNING and run.target.container_id == second.container_id
            assert not run.possibly_incomplete and "INCOMPLETE" not in str(trace.query_one("#title").render())
            assert run.items.paths()[: len(images.DEMO_STARTUP_FILES)] == list(images.DEMO_STARTUP_FILES)
            assert not set(images.DEMO_UNREAD_FILES) & set(run.items.paths())
            # the range tracer saw every start-up file through containerd's overlay (busybox is
            # mapped, the rest read whole: all whole, none without data)
            read = [p for p in images.DEMO_STARTUP_FILES if p not in images.DEMO_CREATED_FILES]
            await until(pilot, lambda: all(p in run.items.ranges() for p in read), what="ranges of the start-up files")
            assert "with ranges / " in str(trace.query_one("#title").render())
            # the demo reads a big file only in part: its ranges show less than the whole file
            big = 2 * 1024 * 1024
            for path, part in images.DEMO_PARTIAL_READS.items():
                await until(pilot, lambda p=path: run.items.ranges().read_bytes(p, big) is not None,
                            what=f"the ranges of {path}")
                assert part <= run.items.ranges().read_bytes(path, big) < big  # type: ignore[operator]
            # and writes a file as it starts: r flags it as created at runtime
            await pilot.press("r")
            await settle(pilot)
            flagged = {run.items.entry(i).path for i in run.items.flagged}
            assert flagged == set(images.DEMO_CREATED_FILES)

            await pilot.press("s", "enter")
            await settle(pilot)
            saved = tmp_path / "demo:1"  # nydus-top.local/demo:1 -> repo dir "." (one component)
            assert saved.read_text().splitlines() == run.items.paths()
            assert saved.read_text().splitlines()[: len(images.DEMO_STARTUP_FILES)] == list(images.DEMO_STARTUP_FILES)
            rows = Path(f"{saved}.csv").read_text().splitlines()
            assert rows[0] == "path,size,elapsed"
            sizes = {line.rsplit(",", 2)[0].strip('"'): int(line.rsplit(",", 2)[1]) for line in rows[1:]}
            assert sizes["/usr/share/demo/models/large.bin"] == 2 * 1024 * 1024
            assert Path(f"{saved}.ranges.json").is_file()

            await pilot.press("S")  # stop the tracer; the list stays
            await until(pilot, lambda: run.state is TraceState.STOPPED, what="the trace to stop")
            # the armed start is kept as a run, named after the container and pod that started
            await until(pilot, lambda: bool(app.workspace.kept_path(run)), what="the start kept as a run")
            kept = listmeta.read(app.workspace.kept_path(run))
            assert kept is not None and (kept.container, kept.pod, kept.image) == (
                "tui-demo-b", "default/tui-demo-b", images.DEMO_IMAGE)
            assert run.items.paths()[: len(images.DEMO_STARTUP_FILES)] == list(images.DEMO_STARTUP_FILES)

            # Attach to the first demo, then let its container die mid-trace.
            await pilot.press("escape", "enter")
            attached = app.screen
            assert isinstance(attached, TraceScreen) and attached.run is not run
            await until(pilot, lambda: attached.run.state is TraceState.RUNNING, what="the attach")
            await asyncio.to_thread(sandbox_node.cri.remove_pod, first.pod_id)
            first = None
            await until(pilot, lambda: attached.run.state is TraceState.STOPPED, what="the end of the trace")
            assert attached.run.error == "target-exited"
            # The run changed on the tracer's thread; the title follows at the next UI tick.
            await until(pilot, lambda: "stopped: target-exited" in str(attached.query_one("#title").render()),
                        what="the title to show the end")
    finally:
        for started in (first, second):
            if started is not None:
                sandbox_node.cri.remove_pod(started.pod_id)


async def test_an_armed_start_answered_before_the_mark_shows_possibly_incomplete(sandbox_node, tmp_path: Path) -> None:
    first = sandbox_node.run_demo(name="tui-late-a")
    second = None
    try:
        # A start hook budget far below what arming takes: containerd is answered without waiting.
        async with app_on_node(sandbox_node, tmp_path, "nydus-top-tui-late", "96", hook_budget=0.001) as (app, pilot):
            trace = await arm_image_of(app, pilot, "tui-late-a", first.container_id)

            second = await asyncio.to_thread(sandbox_node.run_demo, "tui-late-b")
            run = trace.run
            await until(pilot, lambda: run.state is not TraceState.ARMED, what="the armed start")
            assert run.state is not TraceState.FAILED, run.error
            assert run.target.container_id == second.container_id and run.possibly_incomplete
            await until(pilot, lambda: "POSSIBLY INCOMPLETE" in str(trace.query_one("#title").render()),
                        what="the flag in the header")
    finally:
        for started in (first, second):
            if started is not None:
                sandbox_node.cri.remove_pod(started.pod_id)


async def test_an_armed_start_ends_at_its_ready_line(sandbox_node, tmp_path: Path) -> None:
    """With [record] ready_line the armed trace stops by itself once the demo prints it; the saved
    list's metadata says where and why."""
    first = sandbox_node.run_demo(name="tui-ready-a")
    second = None
    try:
        async with app_on_node(sandbox_node, tmp_path, "nydus-top-tui", "95") as (app, pilot):
            app.backend.config = replace(app.backend.config, ready_line=re.escape(images.DEMO_READY_LINE))
            trace = await arm_image_of(app, pilot, "tui-ready-a", first.container_id)
            second = await asyncio.to_thread(sandbox_node.run_demo, "tui-ready-b")
            run = trace.run
            # ended on the tracer's thread; its last batches reach the list at the UI's next drains
            await until(pilot, lambda: run.state is TraceState.STOPPED and not run.queued,
                        what="the trace to end at the ready line, every batch taken")
            assert run.items.paths() == list(images.DEMO_STARTUP_FILES)
            await pilot.press("s", "enter")
            await settle(pilot)
        meta = listmeta.read(tmp_path / "demo:1")
        assert meta is not None and (meta.cut, meta.cut_detail) == ("ready_line", images.DEMO_READY_LINE)
        assert meta.cut_after == images.DEMO_STARTUP_FILES[-1]
    finally:
        for started in (first, second):
            if started is not None:
                sandbox_node.cri.remove_pod(started.pod_id)


async def test_an_armed_image_takes_a_start_by_another_of_its_tags(sandbox_node, tmp_path: Path) -> None:
    """The demo image tagged twice: armed by the tag CRI does not name its containers by (it names
    them by the first in its order), the app still takes the demo's next start, named by that tag."""
    alias = "nydus-top.local/zz-demo-alias:1"  # sorts after the demo's own reference
    await asyncio.to_thread(images._ctr, sandbox_node, "images", "tag", "--force", images.DEMO_IMAGE, alias)
    started = None
    try:
        async with app_on_node(sandbox_node, tmp_path, "nydus-top-tui-alias", "94") as (app, pilot):
            run = app.workspace.arm(ArmSpec(image=alias), alias)
            started = await asyncio.to_thread(sandbox_node.run_demo, "tui-alias")
            await until(pilot, lambda: run.state is not TraceState.ARMED, what="the armed start")
            assert run.target.container_id == started.container_id
            assert run.target.image == alias and run.meta is not None and run.meta.image == alias
    finally:
        if started is not None:
            sandbox_node.cri.remove_pod(started.pod_id)

