"""A trace run's inbox: what the tracer side hands over reaches the list in order, the end of
start-up at a stamped ready line too."""

from __future__ import annotations

import math

from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import Access
from nydus_top.model.trace import LineCut, Target, TraceRun
from nydus_top.recording.readiness import READY_LINE


def at(path: str, elapsed_us: int, size: int = 10) -> Access:
    return Access(0, path, size, elapsed_us, "open", 1, "app")


def test_a_run_drops_what_was_traced_after_start_up_ended_after_the_batches_queued_before() -> None:
    run = TraceRun(Target("app", "registry.local/app:1"))
    run.meta = ListMeta(image="registry.local/app:1", cut=READY_LINE, cut_detail="READY", cut_after="/late",
                        cut_us=8_000)  # as the gate said: the last file it passed on
    run.records([at("/bin/app", 1_000, 100)])
    run.records([at("/first-after", 6_000, 20)])
    run.records([at("/late", 7_000, 3), at("/later", 8_000, 4)])
    run.drop_after(5_000)  # the line's stamp; the tracer side, before the UI took any batch
    assert run.drain(math.inf) == 4 and run.queued == 0
    assert run.items.paths() == ["/bin/app", "/first-after"]
    assert (run.files, run.bytes) == (2, 120)
    assert run.meta is not None and (run.meta.cut_after, run.meta.cut_us) == ("/first-after", 6_000)
    assert run.line_cut == LineCut(5_000, 2)  # what the trace screen says: when, and how many files left


def test_a_run_without_a_cut_in_its_metadata_gets_none_from_a_drop() -> None:
    run = TraceRun(Target("app", "registry.local/app:1"))
    run.records([at("/bin/app", 1_000), at("/late", 9_000), at("/later", 10_000)])
    run.drop_after(5_000)
    run.drain(math.inf)
    assert run.items.paths() == ["/bin/app", "/late"] and run.meta is None
    assert run.line_cut == LineCut(5_000, 1)


def test_a_run_cut_with_nothing_traced_after_it_says_when_and_none_left() -> None:
    run = TraceRun(Target("app", "registry.local/app:1"))
    run.records([at("/bin/app", 1_000)])
    run.drain(math.inf)
    assert run.line_cut is None
    run.drop_after(5_000)
    run.drain(math.inf)
    assert run.items.paths() == ["/bin/app"] and run.line_cut == LineCut(5_000, 0)
