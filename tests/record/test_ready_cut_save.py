"""A stamped ready line cuts the saved list, not only what the gate passes on from then: files the
recording had ingested before the line was seen but that were traced after it are left out of the
saved list (but for the tracer's first batch after it), and the metadata's cut names the last
file kept."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from nydus_top.lists import meta as listmeta
from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access
from nydus_top.recording.readiness import READY_LINE, Readiness, ReadyGate
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings

MARK_NS = 1_700_000_000_000_000_000


class _EndedTrace:
    error = None
    ranges = None

    async def stop(self) -> None:
        pass


def test_files_traced_after_a_stamped_line_are_not_saved(tmp_path: Path) -> None:
    lines: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path, keep_runs=0), lines.append)
    plan = Plan("c-id", result_paths(tmp_path, "registry.local/app:1"), recorder.settings)
    rec = Recording(plan, "pod", "app", _EndedTrace(),  # type: ignore[arg-type]
                    CompactList(budget=recorder.budget), lines.append, ListMeta(image="registry.local/app:1"))
    recorder.recordings[plan.container_id] = rec
    rec.gate = ReadyGate(Readiness(line=re.compile("READY")), rec.ingest, mark_ns=lambda: MARK_NS)
    # The tracer handed these over before the log's poll saw the line, printed 5 ms into the trace.
    rec.gate([Access(0, "/bin/app", 10, 1_000, "open", 1, "app"),
              Access(1, "/etc/app.conf", 10, 5_000, "open", 1, "app"),
              Access(2, "/late/first-batch-after.so", 10, 6_000, "open", 1, "app"),
              Access(3, "/late/plugin.so", 10, 7_000, "open", 1, "app")])
    assert rec.gate.cut_at(READY_LINE, "READY", MARK_NS + 5_000_000)

    async def finish() -> None:
        await recorder.finish("c-id", "StopContainer")  # type: ignore[misc]

    asyncio.run(finish())
    target = tmp_path / "app:1"
    # The tracer's first batch timed after the line may hold reads from before it: it stays.
    assert target.read_text().splitlines() == ["/bin/app", "/etc/app.conf", "/late/first-batch-after.so"]
    meta = listmeta.read(target)
    assert meta is not None
    assert (meta.cut, meta.cut_detail, meta.cut_after, meta.cut_us) == (
        READY_LINE, "READY", "/late/first-batch-after.so", 6_000)
    assert any(line.startswith(f"saved {target} (3 files, ") for line in lines)
