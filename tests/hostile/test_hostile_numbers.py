"""Numbers in a list's csv are hostile input: however long or large, a size or a time is a number
the commands use or one line saying it is bad, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.lists.files import load_list
from testkit.cli_process import HANG, config_for, nydus_top


def listed(tmp_path: Path, size: str, elapsed: str = "5") -> Path:
    path = tmp_path / "app:1"
    path.write_text("/bin/app\n")
    Path(f"{path}.csv").write_text(f"path,size,elapsed\n/bin/app,{size},{elapsed}\n")
    return path


def commands(tmp_path: Path, path: Path) -> list[list[str | Path]]:
    config = config_for(tmp_path)
    return [["diff", path, path], ["--config", config, "consensus", path, path],
            ["--config", config, "evaluate", path, path],
            ["--config", config, "convert", path, "--source", "127.0.0.1:5000/demo:1",
             "--range-list", tmp_path / "out.json", "--force"]]


@pytest.mark.parametrize("size", ["9" * 400 + " EiB", "1" + "0" * 320 + ".5 KiB"], ids=["eib", "kib"])
def test_a_readable_amount_too_large_for_a_float_is_a_bad_size(tmp_path: Path, size: str) -> None:
    path = listed(tmp_path, size)
    warning, = load_list(path).warnings  # the plain list is read without sizes and times
    assert warning.startswith(f"{path}.csv:2: bad size or elapsed ") and warning.endswith("(sizes and times left out)")
    for args in commands(tmp_path, path):
        done = nydus_top(*args)
        assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr, (args, done.stderr)
        assert "bad size or elapsed" in done.stderr


@pytest.mark.parametrize("size, elapsed", [("9" * 5000, "5"), ("5", "9" * 5000), ("1" * 4301, "1" * 4301)],
                         ids=["size", "elapsed", "both"])
def test_more_digits_than_python_reads_is_a_bad_size(tmp_path: Path, size: str, elapsed: str) -> None:
    path = listed(tmp_path, size, elapsed)  # int() refuses over 4300 digits with its own ValueError
    warning, = load_list(path).warnings
    assert warning.startswith(f"{path}.csv:2: bad size or elapsed '{size[:1] if size != '5' else elapsed[:1]}")
    assert warning.endswith("...' (sizes and times left out)")
    csv_path = Path(f"{path}.csv")
    for args in [*commands(tmp_path, path), *commands(tmp_path, csv_path)]:
        done = nydus_top(*args)
        assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr, (args, done.stderr)
        assert "bad size or elapsed" in done.stderr


@pytest.mark.parametrize("policy", ["stream", "wait"])
def test_a_list_size_beyond_a_float_is_evaluated_as_the_largest_size(tmp_path: Path, policy: str) -> None:
    config = config_for(tmp_path)
    huge = listed(tmp_path, "9" * 400)  # an int, but no float: the link model divides it by the bandwidth
    run = tmp_path / "run"
    run.write_text("/bin/app\n")
    Path(f"{run}.csv").write_text("path,size,elapsed\n/bin/app,1000,5\n")
    for args in (["evaluate", huge, run, "--policy", policy, "--json"], ["evaluate", run, huge, "--policy", policy],
                 ["consensus", huge, run, "--json"]):
        done = nydus_top("--config", config, *args)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stderr)


@pytest.mark.parametrize("planted", ["file", "fifo"])
def test_a_file_where_an_images_runs_directory_goes_is_no_runs(tmp_path: Path, planted: str) -> None:
    from nydus_top.runs import store as runstore

    config = config_for(tmp_path)
    directory = runstore.image_dir(tmp_path / "persist", "127.0.0.1:5000/demo:1")
    directory.parent.mkdir(parents=True)
    if planted == "fifo":
        os.mkfifo(directory)
    else:
        directory.write_text("not a directory\n")
    assert runstore.runs_of(directory) == []
    run = listed(tmp_path, "10")
    for args in (["consensus", "--image", "127.0.0.1:5000/demo:1"], ["evaluate", run, "--image", "demo:1"],
                 ["consensus", directory]):
        done = nydus_top("--config", config, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_line_longer_than_many_chunks_is_read_in_linear_time() -> None:
    """consensus and evaluate read a run a chunk at a time: a line spanning many chunks was
    copied again with each one (quadratic: a 400 MB line took minutes, a 1 GiB one far longer)."""
    import time

    from nydus_top.lists.files import _BadLines, _plain_csv_columns, _plain_list_columns
    from nydus_top.lists.paths import PathTable

    chunk, count = b"x" * 512, 16 << 10  # an 8 MiB line in 512-byte chunks: 64 GiB copied before the fix
    plain = [b"/", *[chunk] * count, b"\n/a\n"]
    table_csv = [b"path,size,elapsed\n/", *[chunk] * count, b",1,1\n/a,1,1\n"]
    for read, chunks in ((lambda c, t: _plain_list_columns(c, t, _BadLines(Path("l"))), plain),
                         (_plain_csv_columns, table_csv)):
        table = PathTable()
        started = time.monotonic()
        columns = read(iter(chunks), table)
        assert time.monotonic() - started < 3
        assert columns is not None and len(columns.ids) == 2 and table[columns.ids[1]] == "/a"


def test_a_run_naming_an_invalid_image_is_one_line_when_a_short_name_means_it(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    run = tmp_path / "persist" / ".nydus-top" / "image-runs" / "x" / "evil:1" / "20260101T000000.000000Z-c"
    run.parent.mkdir(parents=True)
    run.write_text("/bin/a\n")
    bad = "x/evil:1\x1b]0;PWN\x07"  # a run's metadata is anyone's (a pulled run: the registry's)
    Path(f"{run}.nydus-top.json").write_text(json.dumps({"schema": 1, "image": bad}))
    listed = tmp_path / "list"
    listed.write_text("/bin/a\n")
    Path(f"{listed}.nydus-top.json").write_text(json.dumps({"schema": 1, "image": bad}))
    for args in (["consensus", "--image", "evil"], ["evaluate", listed, "--image", "evil"]):
        done = nydus_top("--config", config, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.stderr.splitlines() == [
            f"nydus-top {args[0]}: --image {args[-1]}: invalid image reference 'x/evil:1\\x1b]0;PWN\\x07'"]


def test_running_out_of_memory_under_a_limit_is_one_line(tmp_path: Path) -> None:
    """A list near the size limit (1 GiB) takes a few times its size in memory: under an address
    space limit (ulimit -v, prlimit --as) that is a MemoryError, said in one line."""
    big = tmp_path / "big"
    with big.open("wb") as out:  # one 160 MB path: ~3x that while read
        out.write(b"/")
        out.truncate(160 << 20)
    small = listed(tmp_path, "1")
    try:
        done = subprocess.run(["prlimit", f"--as={384 << 20}", "--", sys.executable, "-I", "-m", "nydus_top",
                               "diff", str(big), str(small)], capture_output=True, text=True, timeout=HANG,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("diff hung")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "nydus-top diff: out of memory (a list too large for the memory this process may use)\n"
