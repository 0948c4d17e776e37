"""What a finished recording counts in the metrics: why it may be incomplete (by reason), the
kernel's queue overflows, the range tracer's window and watchdog, its files and bytes; with
metrics off (None) the recorder saves the same files."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import QUEUE, Access, Overflow
from nydus_top.recording.metrics import Metrics
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings
from nydus_top.tracing.range_tracer import FileSeen, RangeCollector, RangeNotice, WholeFile


class _Ranges:
    def __init__(self, collector: RangeCollector) -> None:
        self.collector = collector
        self.stalled = "ranges stopped: the watchdog ended the range tracer"
        self.error = self.stalled


class _EndedTrace:
    def __init__(self, ranges: _Ranges) -> None:
        self.error = None
        self.ranges = ranges

    async def stop(self) -> None:
        pass


def _record(tmp_path: Path, metrics: Metrics | None) -> list[str]:
    lines: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path, range_list=True, keep_runs=1), lines.append, metrics=metrics)
    collector = RangeCollector()
    collector.add([FileSeen(0, "/a", 10), WholeFile(0, "read"), RangeNotice("window")])
    plan = Plan("c-id", result_paths(tmp_path, "registry.local/app:1"), recorder.settings, "registry.local/app:1")
    rec = Recording(plan, "pod", "app", _EndedTrace(_Ranges(collector)),  # type: ignore[arg-type]
                    CompactList(budget=recorder.budget), lines.append, ListMeta(image="registry.local/app:1"))
    recorder.recordings[plan.container_id] = rec
    rec.ingest([Access(0, "/a", 10, 0, "open", 1, "app"), Overflow(5, 3, QUEUE), Overflow(9, 2, QUEUE),
                Access(1, "/b", 20, 1, "open", 1, "app")])

    async def finish() -> None:
        await recorder.finish("c-id", "StopContainer")  # type: ignore[misc]

    asyncio.run(finish())
    return lines


def test_a_finished_recording_counts_why_it_may_be_incomplete(tmp_path: Path) -> None:
    metrics = Metrics()
    lines = _record(tmp_path / "on", metrics)
    value = metrics.registry.get_sample_value
    assert value("nydus_top_recordings_incomplete_total", {"reason": "queue_overflow"}) == 1
    assert value("nydus_top_recordings_incomplete_total", {"reason": "mark_late"}) == 0
    assert value("nydus_top_kernel_queue_overflows_total") == 2
    assert value("nydus_top_range_windows_total") == 1 and value("nydus_top_range_watchdog_kills_total") == 1
    assert value("nydus_top_recording_files_sum") == 2 and value("nydus_top_recording_bytes_sum") == 30
    assert value("nydus_top_saves_total") == 1 and value("nydus_top_runs_kept_total") == 1
    off = _record(tmp_path / "off", None)

    def same(line: str) -> str:  # the runs' names carry the time they were kept
        return re.sub(r"/\d{8}T[\d.]+Z-", "/TIME-", line.replace("/off", "/on"))

    assert [same(line) for line in off] == [same(line) for line in lines]  # metrics change no line
