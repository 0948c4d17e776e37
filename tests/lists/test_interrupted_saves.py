"""A save killed halfway (kill -9) leaves a temporary file; the next save in that directory
removes it, and only what is ours and stale (issue 9 item 12)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nydus_top.fs.confined import STALE_TEMP_AGE
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
    save_list(ENTRIES, tmp_path / "other", root=tmp_path)
    assert temps(tmp_path) == left  # just written: could be a save in its first instant
    age(tmp_path / left[0], STALE_TEMP_AGE + 1)
    result = save_list(ENTRIES, tmp_path / "other", root=tmp_path, overwrite=True)
    assert temps(tmp_path) == []
    assert result.warnings == (f"removed {tmp_path / left[0]}, left by an interrupted save",)


def test_only_our_own_stale_unlocked_regular_temp_files_are_removed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    old_style = tmp_path / ".app:1.k3_xq9za.tmp"  # tempfile.mkstemp's names, as earlier versions made
    ours = tmp_path / ".x.0123abcd.tmp"
    link = tmp_path / ".y.0123abcd.tmp"
    link.symlink_to(victim)
    other = [tmp_path / ".notours.tmp", tmp_path / ".app:1.0123abcd.tmp.keep", tmp_path / "app:1.0123abcd.tmp"]
    locked = tmp_path / ".z.0123abcd.tmp"
    directory = tmp_path / ".d.0123abcd.tmp"
    directory.mkdir()
    for path in (old_style, ours, *other, locked):
        path.write_text("x")
    for path in (old_style, ours, link, *other, locked, directory):
        age(path, STALE_TEMP_AGE + 1)
    with open(locked, "rb") as held:  # a save in progress in another process holds this lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        save_list(ENTRIES, tmp_path / "app:1", root=tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert old_style.name not in left and ours.name not in left
    assert {link.name, locked.name, directory.name, *(p.name for p in other)} <= left
    assert victim.read_text() == "keep"
