"""A stamped ready line cuts the saved list, not only what the gate passes on from then: files the
recording had ingested before the line was seen but that were traced after it are left out of the
saved list (but for the tracer's first batch after it), and the metadata's cut names the last
file kept. The app's armed trace of the same start lists the same files and says the same cut."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from nydus_top.lists import meta as listmeta
from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import load_list, result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.model.node import Container, ContainerState, Pod
from nydus_top.model.records import Access, TraceRecord
from nydus_top.model.trace import LineCut
from nydus_top.recording.readiness import READY_LINE, Readiness, ReadyGate, dropped_after
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings
from nydus_top.runs import store as runstore
from nydus_top.tracing.arming import StartTrace
from nydus_top.workspace.backend import ArmSpec
from nydus_top.workspace.live import LiveBackend
from nydus_top.workspace.traces import Workspace
from testkit.replay_data import make_config

MARK_NS = 1_700_000_000_000_000_000


class _EndedTrace:
    error = None
    ranges = None

    async def stop(self) -> None:
        pass


def test_files_traced_after_a_stamped_line_are_not_saved(tmp_path: Path) -> None:
    # The tracer handed these over before the log's poll saw the line, printed 5 ms into the trace.
    listed, meta, _, lines = _recorded(tmp_path, [[
        _acc("/bin/app", 1_000), _acc("/etc/app.conf", 5_000), _acc("/late/first-batch-after.so", 6_000),
        _acc("/late/plugin.so", 7_000)]], [])
    target = tmp_path / "app:1"
    # The tracer's first batch timed after the line may hold reads from before it: it stays.
    assert listed == ["/bin/app", "/etc/app.conf", "/late/first-batch-after.so"]
    assert (meta.cut, meta.cut_detail, meta.cut_after, meta.cut_us) == (
        READY_LINE, "READY", "/late/first-batch-after.so", 6_000)
    assert any(line.startswith(f"saved {target} (3 files, ") for line in lines)
    # The same words as the app's status line for the same cut.
    assert "recording app: start-up ended at 0.005000s (ready line): 1 file traced after it left the list" in lines


def _acc(path: str, elapsed_us: int) -> Access:
    return Access(0, path, 10, elapsed_us, "open", 1, "app")


Batches = list[list[TraceRecord]]
LINE_NS = MARK_NS + 5_000_000  # the ready line's stamp: 5 ms into the trace
# (batches handed over before the line was seen, batches after, the files listed, the last one's time)
STARTS = {
    "handed over before the line was seen": (
        [[_acc("/bin/app", 1_000), _acc("/etc/app.conf", 5_000)], [_acc("/late/first-batch-after.so", 6_000)],
         [_acc("/late/plugin.so", 7_000)]], [],
        ["/bin/app", "/etc/app.conf", "/late/first-batch-after.so"], 6_000),
    "late batches before and after it was seen": (
        [[_acc("/bin/app", 1_000)], [_acc("/lib/a.so", 6_000), _acc("/lib/b.so", 6_000)], [_acc("/late/1", 7_000)]],
        [[_acc("/late/2", 7_000)], [_acc("/late/3", 8_000)]],
        ["/bin/app", "/lib/a.so", "/lib/b.so"], 6_000),
    "a lagging tracer's one batch": (
        [[_acc("/bin/app", 12_000), _acc("/etc/app.conf", 12_000)]],
        [[_acc("/rest-of-it", 12_000)], [_acc("/late", 13_000)]],
        ["/bin/app", "/etc/app.conf", "/rest-of-it"], 12_000),
}


IMAGE = "registry.local/app:1"


def _kept(persist_dir: Path) -> list[str]:
    """The files of the one run of IMAGE kept under *persist_dir*."""
    kept = runstore.runs_of(runstore.image_dir(persist_dir, IMAGE))
    assert len(kept) == 1
    return [entry.path for entry in load_list(kept[0]).entries]


def _recorded(tmp_path: Path, before: Batches, after: Batches) -> tuple[list[str], ListMeta, list[str], list[str]]:
    """The list, metadata and kept run ``nydus-top record`` saves of a start traced in these
    batches, and the lines it logs."""
    lines: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path, keep_runs=1), lines.append)
    plan = Plan("c-id", result_paths(tmp_path, "registry.local/app:1"), recorder.settings)
    rec = Recording(plan, "pod", "app", _EndedTrace(),  # type: ignore[arg-type]
                    CompactList(budget=recorder.budget), lines.append, ListMeta(image="registry.local/app:1"))
    recorder.recordings[plan.container_id] = rec
    rec.gate = ReadyGate(Readiness(line=re.compile("READY")), rec.ingest, mark_ns=lambda: MARK_NS)
    _trace(rec.gate, before, after)

    async def finish() -> None:
        await recorder.finish("c-id", "StopContainer")  # type: ignore[misc]

    asyncio.run(finish())
    meta = listmeta.read(tmp_path / "app:1")
    assert meta is not None
    return (tmp_path / "app:1").read_text().splitlines(), meta, _kept(tmp_path), lines


def _trace(gate: ReadyGate, before: Batches, after: Batches) -> None:
    for batch in before:
        gate(batch)
    assert gate.cut_at(READY_LINE, "READY", LINE_NS)  # the log's poll sees the line now
    for batch in after:
        gate(batch)


class _Tracer:
    """The tracer behind a start (what the app's backend asks of it)."""

    pid, error, end_reason, mark_ns = 1, None, "stopped", MARK_NS

    def stop(self, timeout: float) -> None:
        pass


class _StartTrace:
    """A start's trace as the app's backend follows it; the test hands over its batches and ends it."""

    def __init__(self) -> None:
        self.trace, self.ranges, self.ranges_error = _Tracer(), None, ""
        self.gate: Callable[[list[TraceRecord]], None] | None = None
        self._ends: list[Callable[[], object]] = []

    def follow(self, listener: Callable[[list[TraceRecord]], None], *, keep: bool = True) -> None:
        self.gate = listener

    def on_end(self, callback: Callable[[], object]) -> None:
        self._ends.append(callback)

    def end(self) -> None:
        for callback in self._ends:
            callback()


def _traced_by_the_app(tmp_path: Path, before: Batches,
                       after: Batches) -> tuple[list[str], ListMeta, list[str], LineCut | None]:
    """The list, metadata and kept run of the app's armed trace of a start traced in these
    batches, and the cut its trace screen says."""
    backend = LiveBackend(make_config(tmp_path, ready_line="READY", keep_runs=1), str(tmp_path / "no-nri.sock"))
    ws = Workspace(backend)
    run = ws.arm(ArmSpec(image=IMAGE), "")
    container = Container("c-id", "p-id", "app", IMAGE, ContainerState.RUNNING, pid=1)
    start = _StartTrace()

    async def deliver() -> None:  # as the start-up capture does, on the NRI loop
        backend._armed_start(StartTrace(container, Pod("p-id", "pod", "ns", "u"), start, True, 1),  # type: ignore[arg-type]
                             run, container)

    try:
        asyncio.run(deliver())
        assert isinstance(start.gate, ReadyGate)
        _trace(start.gate, before, after)
        start.end()  # every batch handed over
        while ws.drain():  # the UI's ticks: the run ends, and is kept
            pass
        return run.items.paths(), ws.list_meta(run), _kept(tmp_path), run.line_cut
    finally:
        ws.close()


@pytest.mark.parametrize("name", STARTS)
def test_the_app_lists_a_start_cut_at_a_stamped_line_as_the_recorder_saves_it(tmp_path: Path, name: str) -> None:
    before, after, listed, last_us = STARTS[name]
    recorded, saved, recorded_run, lines = _recorded(tmp_path / "record", before, after)
    traced, meta, traced_run, said = _traced_by_the_app(tmp_path / "app", before, after)
    assert recorded == traced == listed
    assert recorded_run == traced_run == listed
    cut = (READY_LINE, "READY", listed[-1], last_us)
    assert (saved.cut, saved.cut_detail, saved.cut_after, saved.cut_us) == cut
    assert (meta.cut, meta.cut_detail, meta.cut_after, meta.cut_us) == cut
    assert said is not None and f"recording app: {dropped_after(said.until_us, said.files)}" in lines
