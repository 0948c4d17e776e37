"""The readiness cut's parts without a runtime: CRI log lines, following a log, the metadata."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from nydus_top.config import ConfigError, load_config
from nydus_top.lists import meta as listmeta
from nydus_top.lists.compact import Budget, CompactList
from nydus_top.lists.meta import ListMeta
from nydus_top.model.node import Pod, record_bytes
from nydus_top.model.records import Access, ListedFile, Overflow, TraceRecord, kept_until
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.to_model import LOG_DIRECTORY_ANNOTATION, pod
from nydus_top.recording import readiness
from nydus_top.recording.readiness import LogWatch, Readiness, ReadyGate, cri_content, cri_time, log_candidates


def test_cri_lines_give_what_the_container_printed() -> None:
    assert cri_content(b"2026-12-07T03:11:23.123456789Z stdout F app: READY") == "app: READY"
    assert cri_content(b"2026-12-07T03:11:23.1Z stderr P part of a line") == "part of a line"
    assert cri_content(b"not a cri line") == "not a cri line"
    assert cri_content(b"t stdout F \xff") == "\ufffd"


def test_cri_lines_give_the_time_containerd_stamped() -> None:
    assert cri_time(b"2026-12-07T07:00:00.123456789Z stdout F READY") == 1_796_626_800_123_456_789
    assert cri_time(b"2026-12-07T09:00:00.5+02:00 stdout F READY") == 1_796_626_800_500_000_000
    assert cri_time(b"2026-12-07T01:30:00-05:30 stderr F READY") == 1_796_626_800_000_000_000
    for unstamped in (b"READY", b"t stdout F READY", b"2026-12-07T07:00:00.123 stdout F READY",
                      b"2026-13-07T07:00:00Z stdout F READY", b""):
        assert cri_time(unstamped) is None, unstamped


def test_log_candidates_prefer_kubelets_latest_restart(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    for name in ("0.log", "10.log", "2.log", "x.log"):
        (tmp_path / "app" / name).write_text("")
    assert log_candidates(str(tmp_path), "app") == [tmp_path / "app/10.log", tmp_path / "app/2.log",
                                                     tmp_path / "app/0.log", tmp_path / "app.log"]
    assert log_candidates("", "app") == [] and log_candidates(str(tmp_path), "../x") == []


async def _watch(directory: Path, name: str, pattern: str, write: list[bytes]) -> tuple[str, int | None]:
    matched: asyncio.Future[tuple[str, int | None]] = asyncio.get_running_loop().create_future()
    watch = LogWatch(str(directory), name, re.compile(pattern), lambda line, at_ns: matched.set_result((line, at_ns)))
    watch.start()
    try:
        with open(directory / f"{name}.log", "ab") as log:
            for chunk in write:
                log.write(chunk)
                log.flush()
        return await asyncio.wait_for(matched, 30)
    finally:
        watch.stop()


def test_a_log_is_followed_from_where_it_was_and_a_line_matched_once_whole(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"t stdout F READY from the last start\n")  # a restart appends
    line = asyncio.run(_watch(tmp_path, "app", r"^READY", [b"t stdout F start", b"ing\nt stdout F READ",
                                                           b"Y\nt stdout F READY again\n"]))
    assert line == ("READY", None)
    stamped = asyncio.run(_watch(tmp_path, "app", r"^READY", [b"2026-12-07T07:00:00.25Z stdout F READY\n"]))
    assert stamped == ("READY", 1_796_626_800_250_000_000)


def test_a_long_line_is_matched_on_its_first_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "LINE_MAX", 64)
    written = [b"x" * 100, b"x" * 900 + b"READY\n", b"y" * 30 + b"READY" + b"z" * 300 + b"\n"]
    line = asyncio.run(_watch(tmp_path, "app", "READY", written))  # the first READY is past its line's 64 bytes
    assert line == (("y" * 30 + "READY" + "z" * 300)[:64], None)


def test_a_symlinked_log_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("t stdout F READY\n")
    (tmp_path / "app.log").symlink_to(tmp_path / "secret")
    watch = LogWatch(str(tmp_path), "app", re.compile("READY"), lambda line, at_ns: None)
    assert watch._open() == -1 and watch.path is None
    (tmp_path / "app.log").unlink()
    (tmp_path / "app.log").write_text("")
    fd = watch._open()
    assert fd >= 0 and watch.path == tmp_path / "app.log"
    os.close(fd)


def test_cut_fields_round_trip() -> None:
    meta = ListMeta(image="a/b:1", cut="ready_line", cut_detail="READY", cut_after="/app/x", cut_us=1234)
    assert listmeta.decode(listmeta.encode(meta)) == meta
    with pytest.raises(listmeta.MetaError, match="cut_us must be int"):
        listmeta.decode(b'{"schema": 1, "cut_us": "12"}')


def test_record_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[record]\nready_line = "READY$"\nready_file = "/ready$"\nready_after = 2.5\n')
    config = load_config(path, environ={"HOME": str(tmp_path)}, system_path=tmp_path / "none")
    assert (config.ready_line, config.ready_file, config.ready_after) == ("READY$", "/ready$", 2.5)
    path.write_text('[record]\nready_line = "("\n')
    with pytest.raises(ConfigError, match="key 'record.ready_line' is not a valid regular expression"):
        load_config(path, environ={"HOME": str(tmp_path)}, system_path=tmp_path / "none")
    path.write_text('[record]\nready_after = -1\n')
    with pytest.raises(ConfigError, match="key 'record.ready_after' must be a number of seconds"):
        load_config(path, environ={"HOME": str(tmp_path)}, system_path=tmp_path / "none")


def _acc(path: str, elapsed_us: int) -> Access:
    return Access(0, path, 1, elapsed_us, "open", 1, "sh")


def test_the_gate_passes_reads_up_to_a_ready_file_then_nothing() -> None:
    passed: list[TraceRecord] = []
    cuts: list[int] = []
    gate = ReadyGate(Readiness(file=re.compile(r"/ready$")), passed.extend, lambda: cuts.append(1))
    gate([_acc("/a", 1), Overflow(2), _acc("/ready", 3), _acc("/late", 4)])
    gate([_acc("/later", 5)])
    assert passed == [_acc("/a", 1), Overflow(2), _acc("/ready", 3)]
    assert gate.cut == ("ready_file", "/ready") and gate.last == ("/ready", 3) and cuts == [1]
    assert not gate.cut_at("ready_line", "READY") and cuts == [1]  # the first cut wins


def test_the_gate_ends_at_the_time_window_and_a_line_lets_pending_reads_through() -> None:
    passed: list[TraceRecord] = []
    gate = ReadyGate(Readiness(after=0.5), passed.extend)
    gate([_acc("/a", 400_000), _acc("/b", 600_000)])
    assert passed == [_acc("/a", 400_000)] and gate.cut == ("ready_after", "0.5s")
    passed.clear()
    gate = ReadyGate(Readiness(line=re.compile("READY")), passed.extend)
    assert gate.cut_at("ready_line", "READY")
    gate([_acc("/queued", 7)])  # read before the line, handed over after it was seen: listed
    assert passed == [_acc("/queued", 7)] and gate.last == ("/queued", 7)


def test_a_pods_log_directory_counts_against_the_models_limit() -> None:
    """The annotation comes from the runtime peer: the session's memory limit must see it."""
    got = pod(api.PodSandbox(id="p", name="n", namespace="ns", uid="u",
                             annotations={LOG_DIRECTORY_ANNOTATION: "/var/log/pods/" + "x" * 1000}))
    assert got.log_directory == "/var/log/pods/" + "x" * 1000
    assert record_bytes(got) == record_bytes(Pod("p", "n", "ns", "u")) + len(got.log_directory)


MARK_NS = 1_796_626_800_000_000_000  # the trace's elapsed 0, wall-clock


def test_a_stamped_ready_line_drops_what_was_traced_after_it() -> None:
    """Reads handed over after the line was seen pass when traced before it was printed; those
    traced after it (the app went on while the log was polled) are not start-up."""
    passed: list[TraceRecord] = []
    gate = ReadyGate(Readiness(line=re.compile("READY")), passed.extend, mark_ns=lambda: MARK_NS)
    gate([_acc("/a", 1_000)])
    assert gate.cut_at("ready_line", "READY", MARK_NS + 5_000_000)  # printed 5 ms into the trace
    assert gate.until_us == 5_000
    gate([_acc("/queued", 4_000), _acc("/at-the-line", 5_000), _acc("/first-batch-after", 6_000)])
    gate([_acc("/same-batch", 6_000), Overflow(7_000)])
    gate([_acc("/later", 9_000)])
    # The first batch timed after the line may hold reads made before it (a batch is timed when the
    # tracer reads it): it passes whole; later batches do not.
    assert passed == [_acc("/a", 1_000), _acc("/queued", 4_000), _acc("/at-the-line", 5_000),
                      _acc("/first-batch-after", 6_000), _acc("/same-batch", 6_000)]
    assert gate.last == ("/same-batch", 6_000)


def test_a_batch_passed_before_the_stamped_line_was_seen_is_the_first_after_it() -> None:
    """A lagging tracer: the whole start-up came in one batch timed after the line's stamp, before
    the line was seen. The rest of that batch passes; a later one does not."""
    passed: list[TraceRecord] = []
    gate = ReadyGate(Readiness(line=re.compile("READY")), passed.extend, mark_ns=lambda: MARK_NS)
    gate([_acc("/bin/app", 12_000), _acc("/etc/app.conf", 12_000)])
    assert gate.cut_at("ready_line", "READY", MARK_NS + 5_000_000)
    gate([_acc("/rest-of-it", 12_000), _acc("/late", 13_000)])
    assert passed == [_acc("/bin/app", 12_000), _acc("/etc/app.conf", 12_000), _acc("/rest-of-it", 12_000)]
    # That batch handed over whole before the line was seen: the next one is not the first after.
    passed.clear()
    gate = ReadyGate(Readiness(line=re.compile("READY")), passed.extend, mark_ns=lambda: MARK_NS)
    gate([_acc("/bin/app", 12_000)])
    assert gate.cut_at("ready_line", "READY", MARK_NS + 5_000_000)
    gate([_acc("/late", 13_000)])
    assert passed == [_acc("/bin/app", 12_000)]


def test_a_ready_line_without_a_time_or_mark_cuts_where_it_is_seen() -> None:
    for at_ns, mark_ns in ((None, MARK_NS), (MARK_NS + 5_000_000, None)):
        passed: list[TraceRecord] = []
        gate = ReadyGate(Readiness(line=re.compile("READY")), passed.extend, mark_ns=lambda m=mark_ns: m)
        assert gate.cut_at("ready_line", "READY", at_ns) and gate.until_us is None
        gate([_acc("/late", 6_000)])
        assert passed == [_acc("/late", 6_000)]


@pytest.mark.parametrize(("elapsed", "kept"), [
    ([], 0),
    ([1, 5, 5], 3),  # nothing after the end: all stay, those traced at it too
    ([1, 5, 6, 6, 7, 9], 4),  # the first batch after it (6) stays whole, later ones go
    ([6, 6, 7], 2),  # a lagging tracer: its one batch holds the whole start-up
    ([1, 7], 2),  # one batch after it, however late
], ids=["empty", "none-after", "first-batch-after", "all-after", "one-after"])
def test_start_up_ends_after_the_tracers_first_batch_timed_after_its_end(elapsed: list[int], kept: int) -> None:
    assert kept_until(elapsed, 5) == kept


def test_a_list_drops_its_files_seen_after_a_time_and_gives_their_bytes_back() -> None:
    budget = Budget(1 << 20)
    files = CompactList(budget=budget)
    for path, elapsed in (("/a", 1), ("/b", 5), ("/c", 5), ("/d", 6), ("/e", 7)):
        files.append(path, 10, elapsed)
    used = budget.used
    files.append("/f", 10, 9)
    # The first batch timed after 5 (6: /d) stays: it may hold reads made before 5.
    assert files.drop_after(5) == 2 and [f.path for f in files] == ["/a", "/b", "/c", "/d"]
    assert budget.used == used - (files.nbytes // 4) and files.last() == ListedFile("/d", 10, 6)
    assert files.drop_after(5) == 0 and files.drop_after(0) == 3 and [f.path for f in files] == ["/a"]
    assert files.drop_after(-1) == 0
