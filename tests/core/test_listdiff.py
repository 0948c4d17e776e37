"""Diff of two runs or lists."""

from __future__ import annotations

from nydus_top.lists.diff import diff
from nydus_top.model.records import ListedFile


def entries(*paths: str) -> list[ListedFile]:
    return [ListedFile(p, None, i * 1000) for i, p in enumerate(paths)]


def test_only_in_one_moved_and_time_deltas() -> None:
    a = entries("/bin/app", "/lib/a", "/etc/only-a", *[f"/f{i}" for i in range(20)], "/late")
    b = entries("/bin/app", "/late", "/lib/a", *[f"/f{i}" for i in range(20)], "/only-b")
    result = diff(a, b, moved_by=10)
    assert result.only_a == ("/etc/only-a",) and result.only_b == ("/only-b",)
    assert [m.path for m in result.moved] == ["/late"]
    (late,) = result.moved
    assert (late.position_a, late.position_b, late.shift, late.delta_us) == (23, 1, -22, -22000)
    assert result.common == 23
    assert diff(a, b, moved_by=22).moved == ()  # a shift of exactly K is not "more than K"


def test_json_shape_and_missing_times() -> None:
    result = diff([ListedFile("/x"), ListedFile("/y")], [ListedFile("/y"), ListedFile("/x")], moved_by=0)
    data = result.as_json()
    assert data["common"] == 2 and {m["path"] for m in data["moved"]} == {"/x", "/y"}
    assert all(m["delta_us"] is None for m in data["moved"])
