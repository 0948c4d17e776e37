"""The curated list model: edits, exclusions that also hold for later records, undo/redo."""

import re

import pytest

from nydus_top.model.records import Access, Overflow
from nydus_top.model.tracelist import UNDO_DEPTH, Exclusion, TraceList


def acc(seq: int, path: str) -> Access:
    return Access(seq, path, 10 * seq, 1000 * seq, "open", 1, "sh")


def make(*paths: str) -> TraceList:
    items = TraceList()
    items.extend(acc(i, p) for i, p in enumerate(paths))
    return items


def test_extend_keeps_first_access_and_counts_overflows() -> None:
    items = make("/a", "/b")
    assert items.extend([acc(5, "/a"), Overflow(9000), acc(6, "/c")]) == 1
    assert items.paths() == ["/a", "/b", "/c"]
    assert items.overflows == [Overflow(9000)]


def test_delete_rows_and_undo_redo() -> None:
    items = make("/a", "/b", "/c", "/d")
    assert items.delete([1, 3, 99]) == 2
    assert items.paths() == ["/a", "/c"]
    assert items.undo() and items.paths() == ["/a", "/b", "/c", "/d"]
    assert items.redo() and items.paths() == ["/a", "/c"]
    assert not items.redo()


def test_exclusion_applies_to_later_records_until_undone() -> None:
    items = make("/usr/lib/x.so", "/tmp/a", "/etc/x")
    assert items.exclude(Exclusion("/tmp/*", regex=False)) == 1
    items.extend([acc(3, "/tmp/b"), acc(4, "/usr/y")])
    assert items.paths() == ["/usr/lib/x.so", "/etc/x", "/usr/y"]
    items.undo()  # the exclusion goes, and so does its effect on /tmp/b
    assert items.paths() == ["/usr/lib/x.so", "/tmp/a", "/etc/x", "/tmp/b", "/usr/y"]


def test_regex_exclusion_and_bad_regex() -> None:
    items = make("/a/1.pyc", "/a/1.py", "/b/2.pyc")
    assert items.exclude(Exclusion(r".*\.pyc$", regex=True)) == 2
    assert items.paths() == ["/a/1.py"]
    with pytest.raises(re.error):
        items.exclude(Exclusion("(", regex=True))
    assert items.exclusions == (Exclusion(r".*\.pyc$", True),)


def test_move_selection_up_down_top_bottom() -> None:
    items = make("/0", "/1", "/2", "/3", "/4")
    assert items.move([2, 3], 1) == [1, 2]
    assert items.paths() == ["/0", "/2", "/3", "/1", "/4"]
    assert items.move([4], 0) == [0]
    assert items.paths() == ["/4", "/0", "/2", "/3", "/1"]
    assert items.move([0], 99) == [4]
    assert items.paths() == ["/0", "/2", "/3", "/1", "/4"]
    items.undo()
    items.undo()
    items.undo()
    assert items.paths() == ["/0", "/1", "/2", "/3", "/4"]


def test_noop_move_is_not_an_undo_step() -> None:
    items = make("/0", "/1")
    assert items.move([0], 0) == [0]
    assert not items.can_undo


def test_records_arriving_after_an_edit_survive_its_undo() -> None:
    items = make("/a", "/b")
    items.delete([0])
    items.extend([acc(2, "/c")])
    items.undo()
    assert items.paths() == ["/a", "/b", "/c"]


def test_flag_and_prune_runtime_files() -> None:
    items = make("/bin/sh", "/run/pid", "/tmp/x")
    assert items.set_flags(["/run/pid", "/tmp/x", "/unknown"]) == 2
    assert [items.is_flagged(r) for r in range(3)] == [False, True, True]
    assert items.prune_flagged() == 2
    assert items.paths() == ["/bin/sh"]
    assert items.prune_flagged() == 0


def test_find_wraps_both_ways() -> None:
    items = make("/x1", "/y", "/x2")
    pattern = re.compile("x")
    assert items.find(pattern, 1) == 2
    assert items.find(pattern, 3) == 0
    assert items.find(pattern, 1, backwards=True) == 0
    assert items.find(re.compile("zz"), 0) is None


def test_merge_appends_new_paths_in_order_as_one_step() -> None:
    items = make("/a", "/b")
    assert items.merge([acc(0, "/c"), acc(1, "/a"), acc(2, "/d")]) == 2
    assert items.paths() == ["/a", "/b", "/c", "/d"]
    items.extend([acc(3, "/traced-later")])
    items.undo()
    assert items.paths() == ["/a", "/b", "/traced-later"]
    items.redo()
    assert items.paths() == ["/a", "/b", "/c", "/d", "/traced-later"]


def test_undo_depth_is_bounded() -> None:
    items = make(*(f"/{i}" for i in range(UNDO_DEPTH + 10)))
    for _ in range(UNDO_DEPTH + 5):
        items.delete([0])
    steps = 0
    while items.undo():
        steps += 1
    assert steps == UNDO_DEPTH


@pytest.mark.parametrize("count", [3, 200])  # the scan for a few ids and the pass for many
def test_positions_are_those_of_ids_still_shown(count: int) -> None:
    items = make(*(f"/f{i}" for i in range(300)))
    ids = {items.row_id(r) for r in range(0, count)}
    items.exclude(Exclusion("/f1", False))
    items.delete([0])
    expected = [pos for pos, ident in enumerate(items.rows) if ident in ids]
    assert items.positions(ids) == expected and len(expected) == count - 2


def test_a_cut_ends_the_list_and_keeps_later_records_out_until_undone() -> None:
    items = make("/a", "/b", "/c")
    assert items.cut_after(1) == 1 and items.paths() == ["/a", "/b"] and items.cut == ("/b", 1000)
    items.extend([acc(7, "/late")])  # traced after the cut: start-up had ended
    assert items.paths() == ["/a", "/b"]
    assert items.undo() and items.cut is None and items.paths() == ["/a", "/b", "/c", "/late"]
    assert items.redo() and items.cut == ("/b", 1000) and items.paths() == ["/a", "/b"]
    assert items.cut_after(5) == 0


def at(path: str, elapsed_us: int) -> Access:
    return Access(0, path, 10, elapsed_us, "open", 1, "sh")


def test_files_traced_after_start_up_ended_leave_the_list_but_the_first_batch_after() -> None:
    items = TraceList()
    items.extend([at("/a", 1_000), at("/b", 5_000)])
    items.merge([at("/merged", 99_000)])  # the operator's, not the tracer's: never dropped
    items.extend([at("/first-after", 6_000), at("/same-batch", 6_000)])
    items.move([4], 0)  # curated: the list's order is not the trace's
    items.extend([at("/late", 7_000), at("/later", 8_000)])
    items.set_flags(["/late"])
    items.delete([1])  # an edit while they are shown: its undo step holds them
    dropped = items.drop_after(5_000)
    assert [items.entry(i).path for i in dropped] == ["/late", "/later"]
    assert items.paths() == ["/same-batch", "/b", "/merged", "/first-after"]
    last = items.last_traced()
    assert last is not None and (last.path, last.elapsed_us) == ("/same-batch", 6_000)
    assert items.flagged == set() and [items.entry(i).path for i in items.traced()] == [
        "/a", "/b", "/first-after", "/same-batch"]  # what the start read: not the merge
    assert items.drop_after(5_000) == []
    # Gone for good: an undo brings back what its edit removed, not them.
    assert items.undo() and items.paths() == ["/same-batch", "/a", "/b", "/merged", "/first-after"]
    assert items.undo() and items.undo() and items.paths() == ["/a", "/b", "/first-after", "/same-batch"]
    assert items.merge([at("/late", 1)]) == 1 and items.paths()[-1] == "/late"  # a merge may add it again


def test_a_file_traced_after_start_up_ended_leaves_the_list_wherever_it_was_moved() -> None:
    items = TraceList()
    items.extend([at("/a", 1_000), at("/first-after", 6_000), at("/late", 7_000), at("/later", 8_000)])
    items.move([2], 0)
    assert items.drop_after(5_000) and items.paths() == ["/a", "/first-after"]
