"""What limited a recording's byte ranges is said in words with its range list."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nydus_top.lists import meta as listmeta
from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings
from nydus_top.tracing.range_tracer import (
    FileSeen,
    MappedRange,
    RangeCollector,
    RangeNotice,
    RangeRecord,
    Unobserved,
    WholeFile,
)


class _Ranges:
    def __init__(self, collector: RangeCollector, error: str | None) -> None:
        self.collector = collector
        self.error = error


class _EndedTrace:
    def __init__(self, ranges: _Ranges) -> None:
        self.error = None
        self.ranges = ranges

    async def stop(self) -> None:
        pass


def _saved_line(tmp_path: Path, notices: list[str], error: str | None = None,
                more: tuple[RangeRecord, ...] = ()) -> str:
    lines: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path, range_list=True, keep_runs=0), lines.append)
    collector = RangeCollector()
    collector.add([FileSeen(0, "/a", 10), WholeFile(0, "read"), *(RangeNotice(n) for n in notices), *more])
    plan = Plan("c-id", result_paths(tmp_path, "registry.local/app:1"), recorder.settings)
    rec = Recording(plan, "pod", "app", _EndedTrace(_Ranges(collector, error)),  # type: ignore[arg-type]
                    CompactList(budget=recorder.budget), lines.append, ListMeta(image="registry.local/app:1"))
    recorder.recordings[plan.container_id] = rec
    rec.ingest([Access(0, "/a", 10, 0, "open", 1, "app"), Access(1, "/b", 20, 1, "open", 1, "app")])

    async def finish() -> None:
        await recorder.finish("c-id", "StopContainer")  # type: ignore[misc]

    asyncio.run(finish())
    return lines[-1]


def test_the_window_and_the_watchdog_are_said_with_the_range_list(tmp_path: Path) -> None:
    line = _saved_line(tmp_path, ["window"], "ranges stopped: a read of the image waited 130 ms for the range "
                                             "tracer (bound 100 ms); it was ended, the trace goes on without ranges")
    assert line.startswith(f"saved {tmp_path}/app:1.ranges.json: ranges of 1/2 files")
    assert line.endswith("; range tracer: its start-up window ended (files past it count whole); range tracer: "
                         "ranges stopped: a read of the image waited 130 ms for the range tracer (bound 100 ms); "
                         "it was ended, the trace goes on without ranges")


def test_unobserved_mapped_files_are_in_the_saved_metadata_and_said_beside_the_mapped_bytes(tmp_path: Path) -> None:
    line = _saved_line(tmp_path, [], more=(MappedRange("/b", 4096, 8192), MappedRange("/c", 0, 4096),
                                           Unobserved("/c", "more than 4096 mapped ranges")))
    assert line.endswith("; mapped: 8.0 KiB; mapped pages unobserved (counted whole): /c: more than 4096 mapped ranges")
    meta = listmeta.read(tmp_path / "app:1")
    assert meta is not None and meta.mapped == 8192
    assert meta.unobserved == (("/c", "more than 4096 mapped ranges"),)
    saved = (tmp_path / "app:1.nydus-top.json").read_text()
    assert '"unobserved": {\n    "/c": "more than 4096 mapped ranges"\n  }' in saved  # a JSON object
