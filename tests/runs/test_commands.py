"""`nydus-top consensus` and `nydus-top diff` on files as the recorder and the optimizer write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import load_list, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore

IMAGE = "registry.example:5000/team/app:1"


def _config(tmp_path: Path) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'persist_dir = "{tmp_path / "persist"}"\n')
    return str(path)


def _runs(tmp_path: Path, count: int = 4) -> None:
    for n in range(count):
        paths = ["/bin/app", "/lib/libc.so", *(["/etc/app.conf"] if n % 2 == 0 else []), f"/tmp/r{n}"]
        runstore.save_run(tmp_path / "persist", [ListedFile(p, 10, 100 * i) for i, p in enumerate(paths)],
                          ListMeta(image=IMAGE, container="app", runtime=(f"/tmp/r{n}",) if n == 1 else ()),
                          when=1_700_000_000 + n)


def test_consensus_from_the_run_store_saves_list_csv_and_metadata(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path)
    out = tmp_path / "out" / "app:1"
    assert main(["--config", _config(tmp_path), "consensus", "--image", IMAGE, "-o", str(out)]) == 0
    assert "saved 3 of 7 files (read in >= 0.5 of 4 runs)" in capsys.readouterr().out
    assert out.read_bytes() == b"/bin/app\n/lib/libc.so\n/etc/app.conf\n"
    loaded = load_list(out)
    assert loaded.meta is not None and loaded.meta.image == IMAGE and len(loaded.meta.runs) == 4
    assert main(["--config", _config(tmp_path), "consensus", "--image", IMAGE, "-o", str(out)]) == 1
    assert "pass --force" in capsys.readouterr().err


def test_consensus_takes_optimizer_files_and_directories_and_prints_stability(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path, 2)
    optimizer = tmp_path / "opt"
    optimizer.write_text("/bin/app\n/lib/libc.so\n")  # a plain optimizer result, no csv, no metadata
    directory = runstore.image_dir(tmp_path / "persist", IMAGE)
    assert main(["--config", _config(tmp_path), "consensus", "--json", str(directory), str(optimizer)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["path"], r["seen"], r["runs"]) for r in rows[:2]] == [("/bin/app", 3, 3), ("/lib/libc.so", 3, 3)]
    assert {r["path"] for r in rows if r["seen"] == 1} == {"/tmp/r0", "/tmp/r1", "/etc/app.conf"}
    assert [r["path"] for r in rows if r["runtime_created"]] == ["/tmp/r1"]  # as the run's metadata says


def test_consensus_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["--config", config, "consensus"]) == 2
    assert main(["--config", config, "consensus", "--image", IMAGE]) == 2
    assert main(["--config", config, "consensus", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "no runs of" in lines[1] and "no runs in this directory" in lines[2]
    with pytest.raises(SystemExit):
        main(["consensus", "--min-share", "1.5", str(tmp_path)])


def test_diff_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    save_list([ListedFile("/bin/app", 1, 0), ListedFile("/etc/\x1b[2Jx", 1, 50), ListedFile("/lib/x", 1, 100)], a)
    save_list([ListedFile("/lib/x", 1, 40), ListedFile("/bin/app", 1, 0), ListedFile("/new", 1, 90)], b)
    assert main(["diff", str(a), str(b), "--moved", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 files in both, 1 only in A, 1 only in B, 1 moved by more than 1" in text
    assert "- /etc/\\x1b[2Jx" in text and "\x1b" not in text
    assert "~      3 -> 1      (-2, -0.1ms) /lib/x" in text  # 1-based, as in the app
    assert "no differences" not in text
    assert main(["diff", str(a), str(a)]) == 0
    assert capsys.readouterr().out.splitlines()[::3] == ["3 files in both, 0 only in A, 0 only in B, 0 moved by more "
                                                         "than 10", "no differences: the same files in the same order"]
    one = tmp_path / "one"
    save_list([ListedFile("/bin/app", 1, 0)], one)
    assert main(["diff", str(one), str(b)]) == 0
    assert capsys.readouterr().out.startswith("1 file in both, 0 only in A, 2 only in B")
    assert main(["diff", str(a), str(b), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["only_a"] == ["/etc/\x1b[2Jx"] and data["only_b"] == ["/new"] and data["moved"] == []
    assert main(["diff", str(a), str(b), "--json", "--moved", "1"]) == 0
    (moved,) = json.loads(capsys.readouterr().out)["moved"]
    assert (moved["path"], moved["position_a"], moved["position_b"], moved["shift"]) == ("/lib/x", 3, 1, -2)


def test_consensus_positions_are_1_based_as_in_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path, 2)
    assert main(["--config", _config(tmp_path), "consensus", "--image", IMAGE, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["path"], r["position"]) for r in rows[:2]] == [("/bin/app", 1), ("/lib/libc.so", 2)]
    assert main(["--config", _config(tmp_path), "consensus", "--image", IMAGE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["2/2", "1.0±0"] and lines[1].endswith(" /bin/app")


def test_consensus_image_takes_a_short_name_unambiguous_among_the_runs_here(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path, 2)
    config = _config(tmp_path)
    for name in ("team/app:1", "app:1", "app", IMAGE):
        assert main(["--config", config, "consensus", "--image", name, "--json"]) == 0, name
        assert len(capsys.readouterr().out.splitlines()) == 5
    other = "other.example/app:1"
    runstore.save_run(tmp_path / "persist", [ListedFile("/x", 1, 0)], ListMeta(image=other, container="app"))
    assert main(["--config", config, "consensus", "--image", "app:1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"nydus-top consensus: --image app:1 could mean {other}, {IMAGE}: give the full reference"
    assert main(["--config", config, "consensus", "--image", "app:9"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"nydus-top consensus: --image app:9: no runs of app:9 here (images with runs: {other}, {IMAGE})"


def test_evaluate_scores_each_run_against_a_list_and_the_mean(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Runs read /bin/app, /lib/libc.so (10 B each, at 0 and 100 us), every other /etc/app.conf, and
    # a file of their own. The list holds /bin/app and /lib/libc.so: 2 of 4 (or 3) files each.
    _runs(tmp_path, 4)
    listed = tmp_path / "list"
    save_list([ListedFile("/bin/app", 10), ListedFile("/lib/libc.so", 10)], listed)
    args = ["--config", _config(tmp_path), "evaluate", str(listed), "--image", IMAGE, "--bandwidth", "8kbit",
            "--rtt", "100ms", "--json"]
    assert main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["run"] * 4 + ["mean"]
    assert [r["file_hit_rate"] for r in rows[:4]] == [0.5, 2 / 3, 0.5, 2 / 3]
    assert all(r["against"] == "list" and r["waste_bytes"] == 0 for r in rows[:4])
    # 1000 B/s: /bin/app arrives at 0.01 s (read at 0), /lib/libc.so at 0.02 (read at 0.0001); the
    # rest come on demand (0.1 + 0.01 each).
    assert rows[1]["predicted_stall_s"] == pytest.approx(0.01 + 0.0199 + 0.11)
    assert rows[4]["runs"] == 4 and rows[4]["file_hit_rate"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert rows[4]["policy"] == "stream" and rows[4]["bandwidth"] == 1000.0
    assert main([*args[:-1], "--policy", "wait"]) == 0
    text = capsys.readouterr().out
    assert "policy wait" in text and "mean of 4 runs" in text


def test_evaluate_against_one_run_says_1_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path, 1)
    listed = tmp_path / "list"
    save_list([ListedFile("/bin/app", 10)], listed)
    assert main(["--config", _config(tmp_path), "evaluate", str(listed), "--image", IMAGE]) == 0
    out = capsys.readouterr().out
    assert f"{listed}: 1 file · 1 run\n" in out and "mean of 1 run " in out


def test_evaluate_holds_out_the_runs_a_list_was_made_from(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path, 4)
    out = tmp_path / "out" / "app:1"
    config = _config(tmp_path)
    assert main(["--config", config, "consensus", "--image", IMAGE, "-o", str(out), "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()[1:]]
    assert [r["kind"] for r in printed] == ["run"] * 4 + ["mean"]
    assert main(["--config", config, "evaluate", str(out), "--json"]) == 0  # the runs of the list's image
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["against"] for r in rows[:4]] == ["others"] * 4
    assert rows == printed  # the same leave-one-out summary as consensus printed


def test_consensus_min_share_auto_picks_by_predicted_stall(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Four runs read /a and /b, three of them /c, each one a file of its own. Held out, a run that
    # reads /c finds it in the consensus of the other three at 0.5 (2 of 3) but not at 0.75 (3 of
    # 3): 0.5 has the best stall; 0.25 adds the others' own files after /c, no better, a bigger
    # list. auto takes 0.5: /a, /b, /c.
    for n in range(4):
        paths = ["/a", "/b", *(["/c"] if n < 3 else []), f"/tmp/r{n}"]
        runstore.save_run(tmp_path / "persist", [ListedFile(p, 10, 100 * i) for i, p in enumerate(paths)],
                          ListMeta(image=IMAGE, container="app"), when=1_700_000_000 + n)
    out = tmp_path / "out" / "app:1"
    assert main(["--config", _config(tmp_path), "consensus", "--image", IMAGE, "--min-share", "auto",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "saved 3 of 7 files (read in >= 0.5 of 4 runs)" in text
    assert "leave-one-out at min share 0.5 (--min-share auto" in text
    assert out.read_bytes() == b"/a\n/b\n/c\n"


def test_evaluate_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "list"
    listed.write_text("/bin/app\n")
    assert main(["--config", _config(tmp_path), "evaluate", str(listed)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "nydus-top evaluate: the list names no image: name runs or --image"
    with pytest.raises(SystemExit):
        main(["evaluate", str(listed), "--bandwidth", "fast"])


def test_evaluate_skips_a_bad_or_empty_run_as_consensus_does(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A run no one can read (a pulled one: anyone's) or one without files is skipped with a line;
    the others are scored. When none is left, one line and exit 2."""
    _runs(tmp_path, 2)
    listed = tmp_path / "list"
    save_list([ListedFile("/bin/app", 10)], listed)
    bad, empty = tmp_path / "bad.csv", tmp_path / "empty"
    bad.write_bytes(b"path,size,elapsed\n/x,not a number,1\n")
    empty.write_text("")
    args = ["--config", _config(tmp_path), "evaluate", str(listed)]
    assert main([*args, str(bad), str(empty), "--image", IMAGE, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["run", "run", "mean"]
    assert err.startswith(f"nydus-top evaluate: skipped {bad}: ")
    assert err.endswith(f"nydus-top evaluate: skipped {empty}: no files (an empty run does not count)\n")
    assert main([*args, str(bad), str(empty)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "nydus-top evaluate: none of the 2 runs or lists named could be read: skipped ")


@pytest.mark.parametrize("huge", [1 << 63, 1 << 64, 10 ** 30])
def test_evaluate_a_list_with_a_huge_size_against_runs_with_ranges(tmp_path: Path, huge: int,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A list file may say any size (hostile input): scored, never a traceback."""
    run = tmp_path / "run"
    save_list([ListedFile("/bin/app", 1000, 0)], run)  # run and run.csv
    (tmp_path / "run.ranges.json").write_text(json.dumps({"version": "v1", "files": [
        {"path": "/bin/app", "ranges": [[0, 150]]}]}))
    listed = tmp_path / "list.csv"
    listed.write_text(f"path,size,elapsed\n/bin/app,{huge},0\n")
    assert main(["--config", _config(tmp_path), "evaluate", str(listed), str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    first = json.loads(out.splitlines()[0])
    assert (first["file_hit_rate"], first["byte_hit_rate"], first["read_bytes"]) == (1.0, 1.0, 150)
