"""The confined writer's own contract, case by case (nydus_top/fs/confined.py): the one-line errors
it raises and what they name, the modes of what it creates, refusing before writing anything, the
shape of its temporary files, and which leftovers it removes. Written to kill the mutants that
scripts/mutation found surviving (issue 18 item 21); each asserts documented behaviour."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import resource
import secrets
import signal
import stat
import time
from pathlib import Path

import pytest

from nydus_top.fs.confined import (
    STALE_TEMP_AGE,
    TEMP_MARK,
    ConfinedError,
    ConfinedExistsError,
    describe,
    open_existing_dir,
    remove_stale_temps,
    temp_name_of,
    write_atomic,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def stale_temp(directory: Path, name: str, *, age: float = STALE_TEMP_AGE + 60) -> Path:
    temp = directory / f".{name}{TEMP_MARK}{secrets.token_hex(8)}.tmp"
    temp.write_bytes(b"half")
    past = time.time() - age
    os.utime(temp, (past, past))
    return temp


def test_describe_is_the_strerror_or_else_the_whole_message() -> None:
    assert describe(OSError(errno.ENOENT, "No such file or directory")) == "No such file or directory"
    assert describe(OSError("no errno here")) == "no errno here"


def test_an_existing_file_is_refused_by_default_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "app:1"
    target.write_bytes(b"old")
    with pytest.raises(ConfinedExistsError) as caught:
        write_atomic([(target, b"new")], root=tmp_path)
    assert caught.value.path == target
    assert str(caught.value) == f"{target} already exists"
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize("existing", ["file", "dangling symlink"])
def test_nothing_is_written_when_one_of_the_files_exists(tmp_path: Path, existing: str) -> None:
    fresh, taken = tmp_path / "app:1", tmp_path / "app:1.csv"
    if existing == "file":
        taken.write_bytes(b"old")
    else:
        taken.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfinedExistsError) as caught:
        write_atomic([(fresh, b"new"), (taken, b"new")], root=tmp_path)
    assert caught.value.path == taken
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app:1.csv"]  # fresh not written, no temp left


def test_the_same_path_twice_is_refused_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "app:1"
    with pytest.raises(ConfinedExistsError) as caught:
        write_atomic([(target, b"first"), (target, b"second")], root=tmp_path)
    assert caught.value.path == target
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["app:1"]


def test_files_are_0644_and_directories_0755_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic([(tmp_path / "a" / "b" / "app:1", b"data")], root=tmp_path)
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o755
    assert mode(tmp_path / "a" / "b" / "app:1") == 0o644


def test_a_path_outside_root_is_refused_in_one_line(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "app:1"
    with pytest.raises(ConfinedError, match=f"^cannot save {re.escape(str(outside))}: not under "
                                            f"{re.escape(str(tmp_path / 'persist'))}$"):
        write_atomic([(outside, b"data")], root=tmp_path / "persist")
    with pytest.raises(ConfinedError, match="^cannot remove runs: not under "):
        open_existing_dir(tmp_path / "elsewhere", tmp_path / "persist", "remove runs")


def test_a_root_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "persist"
    root.write_bytes(b"")
    with pytest.raises(ConfinedError, match=f"^cannot save {re.escape(str(root / 'app:1'))}: File exists$"):
        write_atomic([(root / "app:1", b"data")], root=root)
    with pytest.raises(ConfinedError, match="^cannot remove runs: Not a directory$"):
        open_existing_dir(root, root, "remove runs")


def test_a_component_that_is_a_file_is_not_called_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "runs").write_bytes(b"")
    with pytest.raises(ConfinedError, match="^cannot remove runs: Not a directory$"):
        open_existing_dir(tmp_path / "runs" / "app", tmp_path, "remove runs")
    with pytest.raises(ConfinedError, match="^cannot save .*: Not a directory$"):
        write_atomic([(tmp_path / "runs" / "app:1", b"data")], root=tmp_path)


def test_a_symlinked_component_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "real")
    with pytest.raises(ConfinedError, match=f"^cannot remove runs: {re.escape(str(tmp_path / 'runs'))} is a symlink "
                                            f"\\(never followed under {re.escape(str(tmp_path))}\\)$"):
        open_existing_dir(tmp_path / "runs" / "app", tmp_path, "remove runs")


def test_a_missing_directory_is_none_and_nothing_is_created(tmp_path: Path) -> None:
    assert open_existing_dir(tmp_path / "persist" / "runs", tmp_path / "persist", "remove runs") is None
    assert not (tmp_path / "persist").exists()
    (tmp_path / "persist").mkdir()
    assert open_existing_dir(tmp_path / "persist" / "runs" / "app", tmp_path / "persist", "remove runs") is None
    assert list((tmp_path / "persist").iterdir()) == []


def test_a_name_too_long_for_its_temporary_file_is_refused_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / ("a" * 240)  # a valid name; ".<name>.nydus-top.<16 hex>.tmp" is not
    with pytest.raises(ConfinedError, match=f"^cannot save {re.escape(str(target))}: File name too long$"):
        write_atomic([(target, b"data")], root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_write_error_is_refused_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """The file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the write fail with EFBIG."""
    target = tmp_path / "app:1"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(ConfinedError, match=f"^cannot save {re.escape(str(target))}: File too large$"):
            write_atomic([(target, b"x" * 65536)], root=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert list(tmp_path.iterdir()) == []


def test_replacing_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "app:1").mkdir()
    with pytest.raises(ConfinedError, match="^cannot save .*app:1: Is a directory$"):
        write_atomic([(tmp_path / "app:1", b"data")], overwrite=True, root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["app:1"]


def test_no_free_temporary_name_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes: "0" * 2 * nbytes)
    taken = tmp_path / f".app:1{TEMP_MARK}{'0' * 16}.tmp"
    taken.write_bytes(b"another save's")
    with pytest.raises(ConfinedError, match="^cannot save .*app:1: no free temporary name$"):
        write_atomic([(tmp_path / "app:1", b"data")], root=tmp_path)
    assert taken.read_bytes() == b"another save's"


def test_a_save_killed_mid_write_leaves_one_private_temp_file_of_our_shape(tmp_path: Path) -> None:
    """Until it is complete a file is its owner's alone (0600), its fd is not inherited by a child
    started meanwhile (close-on-exec), and its name is one the next save recognises as ours."""
    old = os.umask(0o022)
    try:
        write_atomic([(tmp_path / "app:2", b"done")], root=tmp_path)
    finally:
        os.umask(old)
    assert mode(tmp_path / "app:2") == 0o644
    pid = os.fork()
    if pid == 0:  # the child: killed (as by kill -9) once the data is written, before the file is made readable
        try:
            os.umask(0o022)

            def killed(fd: int, mode: int) -> None:
                if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                    os.kill(os.getpid(), signal.SIGKILL)
                os._exit(3)  # inheritable: the parent sees exit status 3, not SIGKILL

            os.fchmod = killed
            write_atomic([(tmp_path / "app:1", b"data")], root=tmp_path)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    [left] = [p for p in tmp_path.iterdir() if p.name != "app:2"]
    assert temp_name_of("app:1").fullmatch(left.name)
    assert mode(left) == 0o600  # nobody else reads a file before it is complete
    assert left.read_bytes() == b"data"


def test_stale_means_at_least_stale_temp_age_at_the_time_given(tmp_path: Path) -> None:
    exact, fresh = stale_temp(tmp_path, "app:1"), stale_temp(tmp_path, "app:1", age=0)
    whole = int(time.time()) - 100
    os.utime(exact, ns=(whole * 10**9, whole * 10**9))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert remove_stale_temps(fd, "app:1", now=whole + STALE_TEMP_AGE) == [exact.name]
        assert remove_stale_temps(fd, "app:1", now=time.time() + STALE_TEMP_AGE + 1) == [fresh.name]
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []


def test_every_stale_temp_is_removed_past_symlinks_locked_and_fifos(tmp_path: Path) -> None:
    """What is not ours to remove (a symlink, a save in progress, a FIFO: opening one must not hang)
    is skipped, not a reason to stop: every stale temporary file after it goes too."""
    kept = []
    for _ in range(5):
        link = tmp_path / f".app:1{TEMP_MARK}{secrets.token_hex(8)}.tmp"
        link.symlink_to(stale_temp(tmp_path, "other"))
        kept.append(link.name)
        fifo = tmp_path / f".app:1{TEMP_MARK}{secrets.token_hex(8)}.tmp"
        os.mkfifo(fifo)
        past = time.time() - STALE_TEMP_AGE - 60
        os.utime(fifo, (past, past))
        kept.append(fifo.name)
    locked = [stale_temp(tmp_path, "app:1") for _ in range(5)]
    holders = [os.open(p, os.O_RDONLY) for p in locked]
    for holder in holders:
        fcntl.flock(holder, fcntl.LOCK_EX)
    stale = [stale_temp(tmp_path, "app:1") for _ in range(5)]
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sorted(remove_stale_temps(fd, "app:1")) == sorted(p.name for p in stale)
    finally:
        os.close(fd)
        for holder in holders:
            os.close(holder)
    left = {p.name for p in tmp_path.iterdir()}
    assert left >= set(kept) | {p.name for p in locked}
    assert not left & {p.name for p in stale}
