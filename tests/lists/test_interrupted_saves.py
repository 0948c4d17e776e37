"""A save killed halfway (kill -9) leaves a temporary file; the next save of that file removes
it, and only what is provably ours and stale (issue 9 item 12, issue 18 item 15)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nydus_top.fs.confined import STALE_TEMP_AGE, TEMP_MARK
from nydus_top.lists.files import save_list
from nydus_top.model.records import ListedFile

ENTRIES = [ListedFile("/bin/app", 10, 1)]
# Saves app:1 in the directory argv[1], killing itself with SIGKILL right before the first fsync.
KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from nydus_top.lists import files as listfile
from nydus_top.model.records import ListedFile
listfile.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
listfile.save_list([ListedFile("/bin/app", 10, 1)], Path(sys.argv[1]) / "app:1", root=sys.argv[1])
"""


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_killed_save_leaves_a_temp_file_the_next_save_removes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-I", "-c", KILLED_SAVE, str(tmp_path)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    left = temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(".app:1.")
    assert left[0].startswith(f".app:1{TEMP_MARK}")
    save_list(ENTRIES, tmp_path / "app:1", root=tmp_path)
    assert temps(tmp_path) == left  # just written: could be a save in its first instant
    age(tmp_path / left[0], STALE_TEMP_AGE + 1)
    save_list(ENTRIES, tmp_path / "other", root=tmp_path)
    assert temps(tmp_path) == left  # another file's save: not its temp file
    result = save_list(ENTRIES, tmp_path / "app:1", root=tmp_path, overwrite=True)
    assert temps(tmp_path) == []
    assert result.warnings == (f"removed {tmp_path / left[0]}, left by an interrupted save",)


def test_only_our_own_stale_unlocked_regular_temp_files_are_removed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    hex16 = "0123456789abcdef"
    ours = tmp_path / f".app:1{TEMP_MARK}{hex16}.tmp"
    ours_csv = tmp_path / f".app:1.csv{TEMP_MARK}{hex16}.tmp"
    link = tmp_path / f".app:1{TEMP_MARK}{'1' * 16}.tmp"
    link.symlink_to(victim)
    locked = tmp_path / f".app:1{TEMP_MARK}{'2' * 16}.tmp"
    directory = tmp_path / f".app:1{TEMP_MARK}{'3' * 16}.tmp"
    directory.mkdir()
    other = [
        tmp_path / ".config.12345678.tmp",  # an unrelated program's (issue 18 item 15)
        tmp_path / ".app:1.k3_xq9za.tmp",  # tempfile.mkstemp's names, as earlier versions made: left alone
        tmp_path / ".app:1.0123abcd.tmp",  # our own earlier shape: other programs use it too
        tmp_path / f".other:1{TEMP_MARK}{hex16}.tmp",  # ours, but of a file this save does not write
        tmp_path / f".app:1{TEMP_MARK}{hex16}.tmp.keep", tmp_path / f"app:1{TEMP_MARK}{hex16}.tmp",
        tmp_path / f".app:1{TEMP_MARK}{hex16[:15]}.tmp", tmp_path / f".app:1{TEMP_MARK}{hex16.upper()}.tmp",
    ]
    for path in (ours, ours_csv, *other, locked):
        path.write_text("x")
    for path in (ours, ours_csv, link, *other, locked, directory):
        age(path, STALE_TEMP_AGE + 1)
    with open(locked, "rb") as held:  # a save in progress in another process holds this lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        save_list(ENTRIES, tmp_path / "app:1", root=tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert ours.name not in left and ours_csv.name not in left
    assert {link.name, locked.name, directory.name, *(p.name for p in other)} <= left
    assert victim.read_text() == "keep"


def test_an_unrelated_programs_temp_file_survives_a_save_of_any_name(tmp_path: Path) -> None:
    # Issue 18 item 15: a save, as root, deleted another program's .config.12345678.tmp.
    theirs = tmp_path / ".config.12345678.tmp"
    theirs.write_text("someone else's")
    age(theirs, STALE_TEMP_AGE + 1)
    for name in ("app:1", "config", "config.12345678"):
        save_list(ENTRIES, tmp_path / name, root=tmp_path)
    save_list(ENTRIES, tmp_path / "elsewhere" / "x")  # a path the operator typed, no root
    assert theirs.read_text() == "someone else's"


def test_a_run_save_removes_what_interrupted_saves_of_other_runs_left(tmp_path: Path) -> None:
    # Every run has a name of its own: no later save of the same name would ever clean up.
    from nydus_top.lists.meta import ListMeta
    from nydus_top.runs import store as runstore

    meta = ListMeta(image="127.0.0.1:5000/app:1", container="c")
    directory = runstore.image_dir(tmp_path, meta.image)
    directory.mkdir(parents=True)
    killed = runstore.run_name("c", 1_700_000_000)
    stale = [directory / f".{killed}{suffix}{TEMP_MARK}0123456789abcdef.tmp" for suffix in ("", ".csv")]
    fresh = directory / f".{runstore.run_name('c', 1_700_000_001)}{TEMP_MARK}0123456789abcdef.tmp"
    theirs = [directory / ".config.12345678.tmp", directory / f".notes{TEMP_MARK}0123456789abcdef.tmp"]
    for path in (*stale, fresh, *theirs):
        path.write_text("x")
    for path in (*stale, *theirs):
        age(path, STALE_TEMP_AGE + 1)
    runstore.save_run(tmp_path, ENTRIES, meta, when=1_700_000_100)
    assert temps(directory) == sorted(p.name for p in (fresh, *theirs))
