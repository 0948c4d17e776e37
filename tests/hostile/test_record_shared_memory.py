"""Every recording in progress shares one memory limit: containers started at once, each reading
(or creating) as many files as its own limit allows, can no longer add up past what the recorder
may hold; the recording refused says so, and a saved recording gives its share back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nydus_top.lists.compact import PER_FILE, CompactList
from nydus_top.lists.files import result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings

PATHS = [f"/data/file{n:04d}" for n in range(10)]  # 14 bytes each
COST = len(PATHS[0]) + PER_FILE


class _EndedTrace:
    """A trace that has ended, without byte ranges (no range tracer ran)."""

    error = None
    ranges = None

    async def stop(self) -> None:
        pass

    def range_book(self) -> None:
        return None


def _recording(recorder: Recorder, lines: list[str], name: str) -> Recording:
    settings = recorder.settings
    plan = Plan(f"{name}-id", result_paths(settings.persist_dir, f"registry.local/{name}:1"), settings)
    files = CompactList(settings.max_bytes, recorder.budget)
    rec = Recording(plan, "pod", name, _EndedTrace(), files, lines.append,  # type: ignore[arg-type]
                    ListMeta(image=f"registry.local/{name}:1", container=name))
    recorder.recordings[plan.container_id] = rec
    return rec


def _read(rec: Recording, paths: list[str]) -> None:
    rec.ingest([Access(n, path, 1, n, "open", 1, "app") for n, path in enumerate(paths)])


def test_recordings_at_once_stay_within_the_limit_they_share(tmp_path: Path) -> None:
    lines: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path, max_bytes=8 * COST, max_total_bytes=10 * COST, keep_runs=0),
                        lines.append)
    first, second = _recording(recorder, lines, "first"), _recording(recorder, lines, "second")
    _read(first, PATHS[:8])  # its own limit: 8 files
    _read(second, PATHS)  # the 3rd file passes what both may hold together
    assert (len(first.files), len(second.files)) == (8, 2)
    assert recorder.budget.used == 10 * COST
    assert lines == [f"recording second reached the limit of {10 * COST} bytes in memory for all recordings "
                     "together with 2 files: later files are not recorded"]

    async def finish() -> None:
        await recorder.finish("first-id", "StopContainer")
        assert recorder.budget.used == 2 * COST  # the saved recording's share is free again
        await recorder.finish("second-id", "StopContainer")

    asyncio.run(finish())
    assert recorder.budget.used == 0
    assert lines[-1] == (f"saved {tmp_path}/second:1.incomplete (2 files, StopContainer) for second, not as "
                         f"{tmp_path}/second:1; POSSIBLY INCOMPLETE: memory limit reached: 2 files in the "
                         f"recordings' shared {10 * COST} bytes, 8 more not recorded")
    third = _recording(recorder, lines, "third")
    _read(third, PATHS[:8])
    assert len(third.files) == 8


class _RangedTrace(_EndedTrace):
    """An ended trace whose range tracer's bookkeeping was kept within the recorder's budget."""

    def __init__(self, collector) -> None:  # type: ignore[no-untyped-def]
        self.ranges = type("Ranges", (), {"collector": collector, "error": None})()


def test_range_bookkeeping_shares_the_recordings_limit_and_is_given_back(tmp_path: Path) -> None:
    from nydus_top.tracing.range_tracer import FILE_BYTES, RANGE_BYTES, FileSeen, RangeCollector, RangeRead

    lines: list[str] = []
    limit = 3 * COST + FILE_BYTES + len(PATHS[0]) + 2 * RANGE_BYTES  # three files and two ranges of one
    recorder = Recorder(RecordSettings(tmp_path, range_list=True, max_total_bytes=limit, keep_runs=0), lines.append)
    rec = _recording(recorder, lines, "ranged")
    collector = RangeCollector(recorder.budget)
    rec.trace = _RangedTrace(collector)  # type: ignore[assignment]
    _read(rec, PATHS[:3])
    collector.add([FileSeen(0, PATHS[0], 1 << 20), *(RangeRead(0, k * 8192, 4096) for k in range(2))])
    assert recorder.budget.used == limit and collector.notices == []  # at the limit
    _read(rec, PATHS[3:4])  # the ranges' bytes leave none for a fourth file
    assert len(rec.files) == 3
    collector.add([RangeRead(0, 65536, 4096)])  # a third range passes it: the file counts whole
    assert collector.notices == ["memory"] and recorder.budget.used == limit - 2 * RANGE_BYTES

    async def finish() -> None:
        await recorder.finish("ranged-id", "StopContainer")  # type: ignore[misc]

    asyncio.run(finish())
    assert recorder.budget.used == 0  # files and ranges given back
    assert lines[-1].endswith(f"range tracer: the limit in memory for all recordings together ({limit} bytes) "
                              "(files past it count whole)")
