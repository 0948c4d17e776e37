"""The session's workspace of traces: every operator action on traces, without a terminal.

Driven through the replay backend (recorded accesses, a fixed node) and, for arming and
shutting down, the real backend's start-up capture without containerd.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nydus_top.lists.files import load_list
from nydus_top.model.records import Access
from nydus_top.model.trace import TraceState
from nydus_top.workspace.backend import ArmSpec
from nydus_top.workspace.live import LiveBackend
from nydus_top.workspace.traces import Unsaved, Workspace
from testkit.replay import ReplayBackend
from testkit.replay_data import STARTUP, make_backend, make_config

JOB = ArmSpec(namespace="jobs", pod="batch-x1", container="worker")


def workspace(persist_dir: Path | None = None, **config: object) -> tuple[Workspace, ReplayBackend]:
    backend = make_backend(persist_dir, **config)
    return Workspace(backend), backend


def status(ws: Workspace) -> dict[str, str]:
    pods, containers = ws.backend.node.snapshot()
    return ws.status(pods, containers.values())


def test_runs_get_stable_ids_and_drain_reports_each_change_once() -> None:
    ws, replay = workspace()
    nginx = ws.attach("c-nginx", "default/web-7d9f/nginx", "docker.io/library/nginx:1.25")
    side = ws.attach("c-side", "default/web-7d9f/sidecar", "registry.local:5000/tools/envoy:v1")
    assert (nginx.id, side.id) == (1, 2) and ws.get(2) is side and ws.get(3) is None
    assert ws.drain() == {1, 2}
    assert len(nginx.items) == len(STARTUP) and nginx.state is TraceState.RUNNING
    assert ws.drain() == set()
    nginx.records([Access(99, "/new", 1, 99, "open", 1, "sh")])
    assert ws.drain() == {1}
    ws.stop(side)
    assert ws.drain() == {2} and side.state is TraceState.STOPPED
    assert {nginx, side} == set(ws.runs)  # runs hash by identity


def test_a_tracer_that_cannot_start_leaves_a_failed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ws, replay = workspace()

    def refuse(container_id: str, run: object) -> None:
        raise OSError("no such process")

    monkeypatch.setattr(replay, "attach", refuse)
    run = ws.attach("c-nginx", "nginx", "nginx")
    assert run.state is TraceState.FAILED and run.error == "cannot trace: no such process"


def test_status_shows_the_live_trace_and_what_an_armed_run_waits_for() -> None:
    ws, replay = workspace()
    run = ws.arm(JOB, "docker.io/acme/worker:2.1")
    assert run.arm == JOB and run.state is TraceState.ARMED
    assert status(ws) == {"c-job": "armed"}
    ws.attach("c-nginx", "nginx", "nginx")
    ws.drain()
    assert status(ws) == {"c-job": "armed", "c-nginx": f"tracing {len(STARTUP)}"}
    replay.start("c-job")
    ws.drain()
    assert run.state is TraceState.RUNNING and run.target.container_id == "c-job"
    assert status(ws)["c-job"] == "tracing 0"


def test_stopping_an_armed_run_disarms_it() -> None:
    ws, replay = workspace()
    run = ws.arm(ArmSpec(image="docker.io/acme/worker:*"), "")
    assert ws.stop(run) and run.state is TraceState.STOPPED
    assert status(ws) == {} and not ws.stop(run)
    replay.start("c-job")
    assert ws.drain() == {run.id} and len(run.items) == 0  # not taken by the start


def test_live_run_is_the_newest_trace_still_tracing() -> None:
    ws, replay = workspace()
    first = ws.attach("c-nginx", "nginx", "nginx")
    assert ws.live_run("c-nginx") is first
    ws.stop(first)
    assert ws.live_run("c-nginx") is None
    second = ws.attach("c-nginx", "nginx", "nginx")
    assert ws.live_run("c-nginx") is second


def test_merge_another_run_appends_its_curated_paths_in_order() -> None:
    ws, replay = workspace()
    nginx = ws.attach("c-nginx", "nginx", "nginx")
    other = ws.attach("c-side", "sidecar", "envoy")
    ws.drain()
    other.records([Access(0, "/etc/passwd", 1, 1, "open", 1, "sh"), Access(1, "/opt/envoy", 1, 2, "open", 1, "sh"),
                   Access(2, "/opt/gone", 1, 3, "open", 1, "sh"), Access(3, "/opt/last", 1, 4, "open", 1, "sh")])
    ws.drain()
    other.items.delete([2])  # curated away: not merged
    other.items.move([2], 0)  # /opt/last first
    assert ws.merge(nginx, other) == 2
    assert nginx.items.paths()[-2:] == ["/opt/last", "/opt/envoy"]
    assert ws.merge(nginx, nginx) == 0
    assert nginx.items.undo() and len(nginx.items) == len(STARTUP)


def test_unsaved_names_running_armed_and_edited_runs(tmp_path: Path) -> None:
    ws, replay = workspace(tmp_path)
    running = ws.attach("c-nginx", "nginx", "docker.io/library/nginx:1.25")
    armed = ws.arm(JOB, "docker.io/acme/worker:2.1")
    ws.drain()
    assert ws.unsaved() == [Unsaved(running, "tracing"), Unsaved(armed, "armed")]
    ws.stop(running)
    ws.stop(armed)
    assert ws.unsaved() == []  # stopped and never edited: nothing curated is lost
    running.items.delete([0])
    assert ws.unsaved() == [Unsaved(running, "unsaved edits")]
    snapshot = ws.snapshot(running)
    running.items.delete([0])  # after the snapshot a save in the background writes
    ws.save(running, str(tmp_path / "a.list"), overwrite=False, snapshot=snapshot)
    assert ws.is_dirty(running)
    running.items.undo()
    assert ws.is_dirty(running)  # undo is an edit too: the list may differ from the file
    ws.save(running, str(tmp_path / "a.list"), overwrite=True)
    assert not ws.is_dirty(running) and ws.default_save_path(running) == (str(tmp_path / "a.list"), "")
    assert len(load_list(tmp_path / "a.list").entries) == len(STARTUP) - 1


def test_save_unsaved_writes_default_paths_and_never_overwrites_foreign_files(tmp_path: Path) -> None:
    ws, replay = workspace(tmp_path)
    nginx = ws.attach("c-nginx", "nginx", "docker.io/library/nginx:1.25")
    armed = ws.arm(JOB, "docker.io/acme/worker:2.1")
    side = ws.attach("c-side", "sidecar", "registry.local:5000/tools/envoy:v1")
    ws.drain()
    side.records([Access(0, "/opt/envoy", 1, 1, "open", 1, "sh")])
    ws.drain()
    foreign = tmp_path / "tools" / "envoy:v1"
    foreign.parent.mkdir()
    foreign.write_text("/theirs\n")
    failed = ws.save_unsaved()
    assert len(failed) == 1 and failed[0].startswith("sidecar: ") and foreign.read_text() == "/theirs\n"
    saved = tmp_path / "library" / "nginx:1.25"
    assert load_list(saved).entries[0].path == STARTUP[0][0]
    assert not ws.is_dirty(nginx) and ws.saved_path(armed) == ""  # armed, nothing traced: nothing written
    nginx.items.delete([0])
    assert ws.save_unsaved() == failed  # nginx's own file is overwritten, envoy's still refused
    assert len(load_list(saved).entries) == len(STARTUP) - 1


def test_a_loaded_list_is_saved_as_is_and_goes_back_where_it_came_from(tmp_path: Path) -> None:
    ws, replay = workspace(tmp_path)
    source = ws.attach("c-nginx", "nginx", "docker.io/library/nginx:1.25")
    ws.drain()
    path = str(tmp_path / "x.list")
    ws.save(source, path, overwrite=False)
    run = ws.load(path, ws.read(path))
    assert run.state is TraceState.LOADED and run.target.label == f"list {path}"
    assert run.files == len(STARTUP) and not ws.is_dirty(run)
    assert ws.default_save_path(run) == (path, "") and status(ws) == {"c-nginx": f"tracing {len(STARTUP)}"}


def test_default_save_path_without_an_optimizer_name(tmp_path: Path) -> None:
    ws, replay = workspace(tmp_path)
    run = ws.attach("c-nginx", "nginx", "UPPER/Case")
    path, note = ws.default_save_path(run)
    assert path == str(tmp_path / "nydus-top.list") and note.startswith("no optimizer name: ")


def test_close_ends_armed_runs_and_closes_the_backend() -> None:
    ws, replay = workspace()
    armed = ws.arm(JOB, "")
    running = ws.attach("c-nginx", "nginx", "nginx")
    ws.drain()
    ws.close()
    assert armed.state is TraceState.STOPPED and replay.armed == []
    running.records([Access(50, "/late", 1, 1, "open", 1, "sh")])  # closed: dropped, never blocks
    assert running.queued == 0


@pytest.fixture
def live(tmp_path: Path) -> LiveBackend:
    """The real backend, never started: arming and disarming need no containerd."""
    return LiveBackend(make_config(tmp_path), str(tmp_path / "no-nri.sock"))


def test_real_backend_an_armed_run_stops_by_disarming_and_close_ends_the_rest(live: LiveBackend) -> None:
    ws = Workspace(live)
    first = ws.arm(JOB, "")
    second = ws.arm(ArmSpec(image="busybox"), "")
    assert len(live.capture._armings) == 2
    ws.stop(first)
    assert first.state is TraceState.STOPPED and len(live.capture._armings) == 1
    ws.close()
    assert second.state is TraceState.STOPPED and live.capture._armings == []


def test_a_save_with_metadata_writes_the_identity_file_beside_the_list(tmp_path: Path) -> None:
    from nydus_top.lists.meta import ListMeta

    ws, _ = workspace(tmp_path)
    run = ws.attach("c-nginx", "nginx", "docker.io/library/nginx:1.25")
    ws.drain()
    path = str(tmp_path / "n.list")
    ws.save(run, path, overwrite=False, meta=ListMeta(image="docker.io/library/nginx:1.25"))
    meta = ws.read(path).meta
    assert meta is not None and meta.image == "docker.io/library/nginx:1.25" and meta.files == len(STARTUP)


def test_byte_ranges_go_through_the_workspace(tmp_path: Path) -> None:
    from nydus_top.lists.meta import ListMeta

    MiB = 1 << 20
    ws, _ = workspace(tmp_path)
    nginx = ws.attach("c-nginx", "nginx", "docker.io/library/nginx:1.25")  # the replay has its ranges
    side = ws.attach("c-side", "sidecar", "registry.local:5000/tools/envoy:v1")
    ws.drain()
    assert nginx.items.has_ranges() and not side.items.has_ranges()
    totals = nginx.items.prefetch_totals(MiB)
    path = tmp_path / "n.list"
    saved = ws.save(nginx, str(path), overwrite=False, meta=ListMeta(image="docker.io/library/nginx:1.25"))
    assert sorted(p.name for p in saved.paths) == ["n.list", "n.list.csv", "n.list.nydus-top.json",
                                                   "n.list.ranges.json"]  # one atomic write
    loaded = ws.load(str(path), ws.read(str(path)))
    assert loaded.items.has_ranges() and loaded.items.prefetch_totals(MiB)[1:] == totals[1:]
    assert ws.merge(side, nginx) == len(STARTUP) and side.items.prefetch_totals(MiB) == totals
    side.items.undo()
    assert not side.items.has_ranges()
    pg = ws.attach("c-pg", "postgres", "docker.io/library/postgres:16")  # nothing recorded
    listed = ws.read(str(path))
    assert ws.merge(pg, listed.entries, listed.ranges) == len(STARTUP)
    assert pg.items.prefetch_totals(MiB)[1:] == totals[1:]
    result = ws.save_range_list(pg, str(tmp_path / "pg.json"), pg.items.frozen_rows())
    assert result.written == len(STARTUP) and (tmp_path / "pg.json").read_bytes() == (
        tmp_path / "n.list.ranges.json").read_bytes()


@pytest.mark.parametrize("asked", [False, True])
def test_attaching_to_a_running_container_records_ranges_only_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: bool) -> None:
    from nydus_top.model.node import Container, ContainerState
    from nydus_top.workspace import live as live_module

    started: list[int] = []
    real = live_module.start_ranges

    def spy(pool, pid, **kw):  # type: ignore[no-untyped-def]
        started.append(pid)
        return real(pool, pid, **kw)

    monkeypatch.setattr(live_module, "start_ranges", spy)
    backend = LiveBackend(make_config(tmp_path, ranges_on_attach=asked), str(tmp_path / "no-nri.sock"))
    assert backend.config.ranges  # ranges are on: the start-up capture records them
    backend.node.replace_all([], [Container("c1", "p1", "app", "app:1", ContainerState.RUNNING, pid=os.getpid())])
    ws = Workspace(backend)
    try:
        run = ws.attach("c1", "app", "app:1")  # our own pid is in no container: the tracers refuse it
        assert run.id
    finally:
        ws.close()
    assert started == ([os.getpid()] if asked else [])
