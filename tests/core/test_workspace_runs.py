"""Runs in the workspace: the next N starts armed and kept in the run store, runs of an image
opened as one list with their stability, curated and saved as the consensus."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nydus_top.lists.files import load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access, ListedFile
from nydus_top.model.trace import TraceState
from nydus_top.runs import store as runstore
from nydus_top.runs.runset import Run
from nydus_top.workspace.backend import ArmSpec
from nydus_top.workspace.traces import Workspace
from testkit.replay_data import RUNTIME_CREATED, STARTUP, make_backend

NGINX = "docker.io/library/nginx:1.25"
SPEC = ArmSpec(image=NGINX)


def _status(ws: Workspace) -> dict[str, str]:
    pods, containers = ws.backend.node.snapshot()
    return ws.status(pods, containers.values())


def test_the_next_n_starts_are_armed_count_down_and_each_is_kept_as_a_run(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, keep_runs=20)
    ws = Workspace(backend)
    first = ws.arm(SPEC, NGINX, starts=3)
    assert [r.target.label for r in ws.runs] == [f"next start of image {NGINX} ({n} of 3)" for n in (1, 2, 3)]
    assert ws.runs[0] is first and ws.armed_left(SPEC) == 3
    assert _status(ws)["c-nginx"] == "armed ×3"
    for n in range(3):
        backend.start("c-nginx")  # each start goes to the next armed run, one each
        ws.drain()
        assert ws.armed_left(SPEC) == 2 - n
        assert [r.state for r in ws.runs].count(TraceState.RUNNING) == 1
        if n == 0:  # the operator flagged the files it created (r): its run names them
            ws.runs[0].items.set_flags(backend.runtime_created("c-nginx", ws.runs[0].items.paths()))
        ws.stop(ws.runs[n])
        ws.drain()
    directory = runstore.image_dir(tmp_path, NGINX)
    kept = runstore.runs_of(directory)
    assert [ws.kept_path(r) for r in ws.runs] == [str(p) for p in kept] and len(kept) == 3
    loaded = load_list(kept[0])
    assert [e.path for e in loaded.entries] == [p for p, _, _ in STARTUP]
    assert loaded.ranges is not None and loaded.ranges.get("/lib/x86_64-linux-gnu/libcrypto.so.3") is not None
    meta = loaded.meta
    assert meta is not None and meta.image == NGINX and meta.container == "nginx" and meta.pod == "default/web-7d9f"
    assert not meta.complete and meta.incomplete == "1 overflow records"  # the replayed trace has one
    assert set(meta.runtime) == RUNTIME_CREATED and load_list(kept[1]).meta.runtime == ()  # type: ignore[union-attr]
    assert "c-nginx" not in _status(ws) or not _status(ws)["c-nginx"].startswith("armed")
    assert len(ws.notes) == 3 and ws.notes[0].endswith(f"({len(STARTUP)} files)")
    ws.drain()
    assert len(runstore.runs_of(directory)) == 3  # kept once


def test_an_ended_start_is_kept_once_its_inbox_is_drained(tmp_path: Path) -> None:
    """A start that ends while its view is paused (p) is kept with every file it read, not with
    those taken before the pause: its inbox may hold more batches and the end of its start-up."""
    ws = Workspace(make_backend(tmp_path, keep_runs=20))
    run = ws.arm(SPEC, NGINX)
    ws.backend.start("c-nginx")  # type: ignore[attr-defined]
    ws.drain()
    run.paused = True
    run.records([Access(90, "/after-the-pause", 1, 60_000_000, "open", 1, "nginx")])
    run.ended()  # the container exited
    ws.drain()
    assert run.queued == 1 and ws.kept_path(run) == ""
    run.paused = False
    ws.drain()
    kept = load_list(ws.kept_path(run))
    assert [e.path for e in kept.entries] == [*(p for p, _, _ in STARTUP), "/after-the-pause"]


def test_an_ended_start_still_paused_is_kept_at_quit(tmp_path: Path) -> None:
    ws = Workspace(make_backend(tmp_path, keep_runs=20))
    run = ws.arm(SPEC, NGINX)
    ws.backend.start("c-nginx")  # type: ignore[attr-defined]
    run.paused = True
    run.ended()
    ws.drain()
    assert ws.kept_path(run) == ""
    ws.close()
    assert [e.path for e in load_list(ws.kept_path(run)).entries] == [p for p, _, _ in STARTUP]



def test_a_kept_start_holds_what_it_read_and_where_its_start_up_was_cut(tmp_path: Path) -> None:
    """A list the operator merged into the view while the start ran is no read of that start: its
    kept run leaves it out (a consensus counts runs). A start cut at readiness is kept saying so, as
    the recorder keeps its runs."""
    ws = Workspace(make_backend(tmp_path, keep_runs=20))
    run = ws.arm(SPEC, NGINX)
    ws.backend.start("c-nginx")  # type: ignore[attr-defined]
    ws.drain()
    assert run.items.merge([ListedFile("/merged/by-the-operator", 10)])
    run.records([Access(90, "/read-after-the-merge", 1, 60_000_000, "open", 1, "nginx")])
    run.meta = replace(run.meta or ListMeta(), cut="ready_line", cut_detail="READY",
                       cut_after="/read-after-the-merge", cut_us=60_000_000)
    run.ended()
    ws.drain()
    kept = load_list(ws.kept_path(run))
    assert [e.path for e in kept.entries] == [*(p for p, _, _ in STARTUP), "/read-after-the-merge"]
    assert kept.meta is not None
    assert (kept.meta.cut, kept.meta.cut_detail, kept.meta.cut_after, kept.meta.cut_us) == (
        "ready_line", "READY", "/read-after-the-merge", 60_000_000)

def test_starts_are_not_kept_with_keep_runs_0_nor_attached_traces(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, keep_runs=0)
    ws = Workspace(backend)
    ws.arm(SPEC, NGINX)
    backend.start("c-nginx")
    ws.drain()
    ws.stop(ws.runs[0])
    ws.drain()
    kept = Workspace(make_backend(tmp_path, keep_runs=5))
    attached = kept.attach("c-nginx", "nginx", NGINX)
    kept.drain()
    kept.stop(attached)
    kept.drain()
    assert not (tmp_path / runstore.RUNS_DIR).exists()


def test_arming_more_than_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="from 1 to 100"):
        Workspace(make_backend()).arm(SPEC, NGINX, starts=101)


def _runs() -> list[Run]:
    fixed = ["/bin/app", "/lib/libc.so", "/etc/app.conf"]
    runs = []
    for n in range(4):
        paths = [f"/tmp/r{n}", *fixed, *(["/opt/extra"] if n < 2 else [])]
        runs.append(Run(f"run{n}", [ListedFile(p, 10 + i, 100 * i + n) for i, p in enumerate(paths)],
                        runtime=frozenset({"/tmp/r1"} if n == 1 else ())))
    return runs


def test_runs_open_as_one_list_filtered_at_the_share_with_undo_showing_all(tmp_path: Path) -> None:
    ws = Workspace(make_backend(tmp_path))
    run = ws.load_runs("team/app:1", _runs())
    counted = ws.runset(run)
    assert counted is not None and counted.runs == 4 and run.target.label == "runs of team/app:1 (4)"
    assert run.items.paths() == ["/bin/app", "/lib/libc.so", "/etc/app.conf", "/opt/extra"]
    assert not ws.is_dirty(run) and run.state is TraceState.LOADED
    assert counted.by_path["/opt/extra"].seen == 2 and counted.by_path["/tmp/r0"].seen == 1
    assert run.items.undo()  # every file of any run
    assert len(run.items) == 8 and ws.is_dirty(run)
    assert {run.items[pos].path for pos in range(8) if run.items.is_flagged(pos)} == {"/tmp/r1"}
    assert ws.keep_share(run, 0.75) == 5
    assert run.items.paths() == ["/bin/app", "/lib/libc.so", "/etc/app.conf"]


def test_sort_by_share_and_back_are_undoable_edits(tmp_path: Path) -> None:
    ws = Workspace(make_backend(tmp_path))
    run = ws.load_runs("team/app:1", _runs(), min_share=0)
    consensus = run.items.paths()
    assert consensus[0] == "/tmp/r0" and consensus[4:7] == ["/bin/app", "/lib/libc.so", "/etc/app.conf"]
    assert ws.sort_by_share(run, True)
    shares = [ws.runset(run).by_path[p].seen for p in run.items.paths()]  # type: ignore[union-attr]
    assert shares == sorted(shares, reverse=True)
    assert ws.sort_by_share(run, False) and run.items.paths() == consensus
    assert not ws.sort_by_share(run, False)  # already in that order: no edit


def test_a_saved_consensus_names_its_runs(tmp_path: Path) -> None:
    ws = Workspace(make_backend(tmp_path))
    run = ws.load_runs("team/app:1", _runs())
    path, note = ws.default_save_path(run)
    assert path == str(tmp_path / "team" / "app:1") and note == ""
    ws.save(run, path, overwrite=False)
    loaded = load_list(path)
    assert [e.path for e in loaded.entries] == ["/bin/app", "/lib/libc.so", "/etc/app.conf", "/opt/extra"]
    assert loaded.meta is not None and loaded.meta.runs == ("run0", "run1", "run2", "run3")
    assert loaded.meta.image == "team/app:1" and not ws.is_dirty(run)


def test_runs_of_an_image_are_read_from_the_run_store(tmp_path: Path) -> None:
    from nydus_top.lists.meta import ListMeta
    from nydus_top.runs.runset import images_with_runs

    for n, run in enumerate(_runs()):
        runstore.save_run(tmp_path, run.entries, ListMeta(image="registry.local:5000/team/app:1", container="app",
                                                          complete=n != 3, runtime=tuple(run.runtime)),
                          when=1_700_000_000 + n)
    assert images_with_runs(tmp_path) == ["registry.local:5000/team/app:1"]  # the full reference
    assert Workspace.read_runs(tmp_path, "team/app:1") == ([], [])  # docker.io/team/app:1: another image
    runs, warnings = Workspace.read_runs(tmp_path, "registry.local:5000/team/app:1")
    assert warnings == [] and [r.complete for r in runs] == [True, True, True, False]
    assert [r.name[-5:] for r in runs] == ["Z-app"] * 4
    ws = Workspace(make_backend(tmp_path))
    run = ws.load_runs("team/app:1", runs)
    assert run.target.image == "registry.local:5000/team/app:1"  # as the runs' metadata name it
    assert ws.default_save_path(run)[0] == str(tmp_path / "team" / "app:1")
    assert run.items.paths() == ["/bin/app", "/lib/libc.so", "/etc/app.conf", "/opt/extra"]
    assert not ws.runset(run).complete  # type: ignore[union-attr]
    assert ws.runset(run).runtime_created() == {"/tmp/r1"}  # type: ignore[union-attr]
    run.items.undo()
    assert [run.items[pos].path for pos in range(len(run.items)) if run.items.is_flagged(pos)] == ["/tmp/r1"]


def test_runs_with_byte_ranges_open_and_save_with_their_union(tmp_path: Path) -> None:
    from nydus_top.lists.files import ranges_path
    from nydus_top.lists.meta import ListMeta
    from nydus_top.lists.ranges import RangeBook, RangeSet

    MiB = 1 << 20
    for n, (start, end) in enumerate(((0, MiB), (4 * MiB, 5 * MiB))):
        book = RangeBook()
        book.set("/big", RangeSet.from_pairs([[start, end - start]]))
        runstore.save_run(tmp_path, [ListedFile("/big", 8 * MiB, 1)], ListMeta(image="team/app:1", container="app"),
                          when=1_700_000_000 + n, ranges=book)
    runs, _ = Workspace.read_runs(tmp_path, "team/app:1")
    ws = Workspace(make_backend(tmp_path))
    run = ws.load_runs("team/app:1", runs)
    assert run.items.prefetch_totals(MiB) == (1, 2 * MiB, 8 * MiB)  # both runs' chunks, not the whole file
    ws.save(run, str(tmp_path / "consensus"), overwrite=False)
    assert load_list(tmp_path / "consensus").ranges.get("/big").bytes == 2 * MiB  # type: ignore[union-attr]
    assert ranges_path(tmp_path / "consensus").exists()
