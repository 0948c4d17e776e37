"""Files on disk beside a list are hostile input (issue 18 items 11-13): a FIFO planted where a
file should be never hangs a command, a range list (it can come from a registry) nested too deep
or with absurd values is one line, and a garbage file gives a few warnings and a count, in
bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.fs.reading import ReadError, ReadMissing, read_regular
from nydus_top.lists.files import MAX_BAD_LINES, ListFileError, load_list, load_range_list, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import MAX_RANGE_END, RangeBook
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from testkit.cli_process import config_for, nydus_top

IMAGE = "127.0.0.1:5000/demo:1"


# ---------------------------------------------------------------- FIFOs (item 11)


def test_the_reader_refuses_what_is_not_a_regular_file_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match=f"^{fifo} is a FIFO, not a regular file: not read$"):
        read_regular(fifo, limit=100)
    with pytest.raises(ReadError, match="is a directory, not a regular file"):
        read_regular(tmp_path, limit=100)
    with pytest.raises(ReadError, match="is a character device, not a regular file"):
        read_regular("/dev/zero", limit=100)
    link = tmp_path / "link"
    link.symlink_to("/etc/hostname")
    with pytest.raises(ReadError, match=f"^{link} is a symlink: not read$"):
        read_regular(link, limit=100, follow=False)
    with pytest.raises(ReadMissing):
        read_regular(tmp_path / "nope", limit=100)


def test_the_reader_caps_the_size_at_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, limit=100) == b"x" * 100
    with pytest.raises(ReadError, match=f"^{path}: larger than 99 bytes, not read$"):
        read_regular(path, limit=99)


@pytest.mark.parametrize("planted", [".nydus-top.json", ".csv", ".ranges.json"])
def test_a_fifo_beside_a_list_is_one_warning(tmp_path: Path, planted: str) -> None:
    listed = tmp_path / "app:1"
    listed.write_text("/bin/app\n")
    os.mkfifo(f"{listed}{planted}")
    done = nydus_top("diff", listed, listed, "--json")  # would block for good in open() before the fix
    assert done.returncode == 0 and json.loads(done.stdout)["common"] == 1
    warning, = set(done.stderr.splitlines())
    assert warning.startswith(f"nydus-top diff: {listed}{planted} is a FIFO, not a regular file: not read (")


def test_a_fifo_planted_as_list_metadata_hangs_no_command(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    run = save_list([ListedFile("/bin/app", 10, 1)], runstore.image_dir(tmp_path / "persist", IMAGE) /
                    runstore.run_name("c1"), meta=ListMeta(image=IMAGE)).paths[0]
    meta = Path(f"{run}.nydus-top.json")
    meta.unlink()
    os.mkfifo(meta)
    warning = f"{meta} is a FIFO, not a regular file: not read (list identity unknown)"
    for args in (["consensus", "--image", IMAGE], ["consensus", run],
                 ["convert", run, "--range-list", tmp_path / "out.json"]):
        done = nydus_top("--config", config, *args)
        assert done.returncode == 0, done.stderr
        assert warning in done.stderr and "Traceback" not in done.stderr


def test_a_fifo_as_the_list_or_the_config_is_refused_in_one_line(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = nydus_top("--config", config, "convert", fifo, "--source", IMAGE)
    assert (done.returncode, done.stderr) == (2, f"nydus-top convert: {fifo} is a FIFO, not a regular file: not read\n")
    done = nydus_top("--config", fifo, "consensus", fifo)
    assert done.returncode == 2
    assert done.stderr == f"nydus-top consensus: {fifo} is a FIFO, not a regular file: not read\n"


# ---------------------------------------------------------------- range lists (item 12)


def with_ranges(tmp_path: Path, ranges: bytes, size: int = 1000) -> Path:
    listed = tmp_path / "app:1"
    listed.write_text("/bin/app\n")
    Path(f"{listed}.csv").write_text(f"path,size,elapsed\n/bin/app,{size},5\n")
    Path(f"{listed}.ranges.json").write_bytes(ranges)
    return listed


def range_doc(ranges: object) -> bytes:
    return json.dumps({"version": "v1", "files": [{"path": "/bin/app", "ranges": ranges}]}).encode()


def test_a_range_list_nested_too_deep_is_one_line_in_every_command(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path)
    listed = with_ranges(tmp_path, b"[" * 100_000 + b"]" * 100_000)
    line = f"{listed}.ranges.json: bad range list: nested too deep (ranges left out)"
    assert load_list(listed).warnings == (line,)
    for args, prog in ((["--config", config, "consensus", listed], "consensus"), (["diff", listed, listed], "diff"),
                       (["--config", config, "convert", listed, "--range-list", tmp_path / "out.json"], "convert")):
        assert main([*map(str, args)]) == 0
        err = capsys.readouterr().err
        assert f"nydus-top {prog}: {line}" in err.splitlines() and "Traceback" not in err
    with pytest.raises(ListFileError, match="nested too deep"):
        load_range_list(f"{listed}.ranges.json")


@pytest.mark.parametrize("ranges, why", [
    ([[0, 10 ** 30]], f"bad range [0, {10 ** 30}]: need offset >= 0, size > 0, end <= {MAX_RANGE_END}"),
    ([[0, 1e30]], "a range must be [offset, size], two integers, got [0, 1e+30]"),
    ([[0.0, 10]], "a range must be [offset, size], two integers, got [0.0, 10]"),
    ([[-1, 10]], "bad range [-1, 10]: need offset >= 0"),
    ([[10, 0]], "bad range [10, 0]: need offset >= 0, size > 0"),
    ([[True, 10]], "a range must be [offset, size], two integers, got [True, 10]"),
    ([[0, 10, 20]], "a range must be [offset, size], two integers"),
    ([["0", "10"]], "a range must be [offset, size], two integers"),
    ({"0": 10}, "ranges must be a list of [offset, size] pairs or null"),
    ([[0, 600], [900, 101]], "ranges of '/bin/app' end at 1001, beyond its size 1000"),
])
def test_range_values_are_checked(tmp_path: Path, ranges: object, why: str) -> None:
    listed = with_ranges(tmp_path, range_doc(ranges))
    loaded = load_list(listed)
    assert loaded.ranges is None
    assert len(loaded.warnings) == 1 and why in loaded.warnings[0] and "(ranges left out)" in loaded.warnings[0]


def test_ranges_up_to_the_limits_are_kept(tmp_path: Path) -> None:
    loaded = load_list(with_ranges(tmp_path, range_doc([[0, 600], [900, 100]])))
    assert loaded.warnings == () and isinstance(loaded.ranges, RangeBook)
    assert list(loaded.ranges.get("/bin/app") or ()) == [(0, 600), (900, 1000)]
    path = tmp_path / "any.json"
    path.write_bytes(range_doc([[MAX_RANGE_END - 10, 10]]))
    assert list(load_range_list(path).get("/bin/app") or ()) == [(MAX_RANGE_END - 10, MAX_RANGE_END)]
    path.write_bytes(range_doc([[MAX_RANGE_END - 10, 11]]))
    with pytest.raises(ListFileError, match="need offset >= 0, size > 0, end <= "):
        load_range_list(path)


def test_readable_sizes_are_rounded_so_ranges_may_pass_them_a_little(tmp_path: Path) -> None:
    listed = tmp_path / "app:1"
    listed.write_text("/bin/app\n")
    Path(f"{listed}.csv").write_text("path,size,elapsed\n/bin/app,1.5 KiB,5 us\n")  # 1536, really up to 1587
    Path(f"{listed}.ranges.json").write_bytes(range_doc([[0, 1580]]))
    assert load_list(listed).warnings == ()
    Path(f"{listed}.ranges.json").write_bytes(range_doc([[0, 1700]]))
    assert "beyond its size 1536" in load_list(listed).warnings[0]


def test_an_absurd_range_is_never_written_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path)
    listed = with_ranges(tmp_path, range_doc([[0, 10 ** 30]]))
    out = tmp_path / "out.json"
    assert main(["--config", str(config), "convert", str(listed), "--range-list", str(out)]) == 0
    assert json.loads(out.read_bytes())["files"] == [{"path": "/bin/app", "ranges": None}]
    assert "(ranges left out)" in capsys.readouterr().err


# ---------------------------------------------------------------- garbage (item 13)

# Peak RSS of this process's own memory (VmHWM, KiB): ru_maxrss would also hold the peak of the
# process it was forked from (Linux carries it across execve), here pytest's, large late in a run.
MEASURE = """
import re, sys
from nydus_top.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1], file=sys.stderr)
sys.exit(code)
"""
GARBAGE_BYTES = 10 << 20
RSS_BOUND_KIB = 200 << 10  # before the fix: 820 MiB for 10 MB of short garbage lines


def garbage(path: Path, header: str = "") -> Path:
    line = b"x,1,1\n" if header else b"xx\n"
    path.write_bytes(header.encode() + line * (GARBAGE_BYTES // len(line)))
    return path


def test_bad_lines_are_warned_about_a_few_times_then_counted(tmp_path: Path) -> None:
    plain = garbage(tmp_path / "plain")
    loaded = load_list(plain)
    lines = GARBAGE_BYTES // 3
    first = (f"{plain}:{n}: skipped 'xx': not an absolute path" for n in range(1, MAX_BAD_LINES + 1))
    assert loaded.warnings == (*first, f"{plain}: ... and {lines - MAX_BAD_LINES} more bad lines")
    table = garbage(tmp_path / "table.csv", "path,size,elapsed\n")
    assert load_list(table).warnings[-1] == f"{table}: ... and {GARBAGE_BYTES // 6 - MAX_BAD_LINES} more bad lines"
    assert len(load_list(table).warnings) == MAX_BAD_LINES + 1


def test_exactly_the_cap_gives_no_count_and_a_long_line_is_shown_clipped(tmp_path: Path) -> None:
    path = tmp_path / "few"
    path.write_text("x\n" * (MAX_BAD_LINES - 1) + "y" * 10_000 + "\n/bin/app\n")
    warnings = load_list(path).warnings
    assert len(warnings) == MAX_BAD_LINES and "more bad lines" not in warnings[-1]
    assert warnings[-1] == f"{path}:{MAX_BAD_LINES}: skipped {'y' * 80 + '...'!r}: not an absolute path"


def test_a_10_mb_garbage_file_gives_a_few_lines_in_bounded_memory(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    plain = garbage(tmp_path / "plain")
    with plain.open("ab") as tail:  # one good line: the run counts (a run of garbage only is refused)
        tail.write(b"/bin/app\n")
    done = subprocess.run([sys.executable, "-I", "-c", MEASURE, "--config", str(config), "consensus", str(plain)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    *warnings, rss = done.stderr.splitlines()
    assert len(warnings) == MAX_BAD_LINES + 1 and warnings[-1].endswith("more bad lines")
    assert int(rss) < RSS_BOUND_KIB
