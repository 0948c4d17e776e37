"""Containers screen rows: flattening, regex filter with negation, sort keys, ages."""

import re
import subprocess
from dataclasses import replace

import psutil
import pytest

from nydus_top.model.container_rows import build_rows, filter_rows, format_age, sort_rows
from testkit.replay_data import CONTAINERS, NOW, PODS

PODS_BY_ID = {p.id: p for p in PODS}


def rows():
    return build_rows(PODS_BY_ID, CONTAINERS, {"c-nginx": "tracing 3"}, NOW)


def test_rows_carry_pod_state_age_and_trace_status() -> None:
    by_name = {r.container: r for r in rows()}
    assert (by_name["nginx"].namespace, by_name["nginx"].pod, by_name["nginx"].age_s) == ("default", "web-7d9f", 390)
    assert by_name["nginx"].trace == "tracing 3"
    assert by_name["worker"].age_s == 30  # never started: age from creation


def test_filter_regex_and_negation() -> None:
    assert [r.container for r in filter_rows(rows(), "library/")] == ["nginx", "postgres"]
    assert sorted(r.container for r in filter_rows(rows(), "!library/")) == ["sidecar", "worker"]
    assert len(filter_rows(rows(), "")) == 4
    with pytest.raises(re.error):
        filter_rows(rows(), "([")


@pytest.mark.parametrize(("key", "first"), [("pod", "nginx"), ("pid", "worker"), ("age", "worker"),
                                            ("image", "worker"), ("container", "nginx")])
def test_sort_keys(key: str, first: str) -> None:
    assert sort_rows(rows(), key)[0].container == first
    assert sort_rows(rows(), key, reverse=True)[-1].container == first


def test_age_without_times_and_age_format() -> None:
    unknown = replace(CONTAINERS[0], started_at=None, created_at=None, pid=0)
    assert build_rows(PODS_BY_ID, [unknown], {}, NOW)[0].age_s is None
    assert [format_age(s) for s in (5, 312, 11040, 190000, None)] == ["5s", "5m12s", "3h4m", "2d4h", "-"]


def test_age_falls_back_to_the_container_process_start_time() -> None:
    """containerd 1.7 sends no timestamps over NRI: the host knows when the process started."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(child.pid).create_time()
        running = replace(CONTAINERS[0], started_at=None, created_at=None, pid=child.pid)
        assert build_rows(PODS_BY_ID, [running], {}, started + 75)[0].age_s == pytest.approx(75)
    finally:
        child.kill()
        child.wait()
