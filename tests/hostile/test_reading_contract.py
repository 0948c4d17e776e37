"""The hostile-file reader's edges (nydus_top/fs/reading.py): every kind of file named in a
message, procfs and sysfs files (sizes that say 0, short reads, a read that fails), a refusal
that is no ELOOP, a symlink typed, a writable trusted file on a read-only mount, is_regular on
what is missing. Written to kill the mutants scripts/mutation found surviving (issue 18 item 21);
each asserts documented behaviour."""

from __future__ import annotations

import ctypes
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from nydus_top.fs.reading import ReadError, is_regular, kind, read_regular

CLONE_NEWNS = 0x00020000


@pytest.mark.parametrize(("mode", "text"), [
    (stat.S_IFIFO, "a FIFO"), (stat.S_IFSOCK, "a socket"), (stat.S_IFCHR, "a character device"),
    (stat.S_IFBLK, "a block device"), (stat.S_IFDIR, "a directory"), (stat.S_IFLNK, "a symlink"),
    (0, "not a regular file"),  # no file type at all
])
def test_every_kind_of_file_has_its_name_for_messages(mode: int, text: str) -> None:
    assert kind(mode | 0o644) == text


def test_a_procfs_file_is_read_whole_though_its_size_says_zero() -> None:
    """procfs and sysfs files report st_size 0; what they hold is read, up to the limit."""
    assert os.stat("/proc/sys/kernel/ostype").st_size == 0
    assert read_regular("/proc/sys/kernel/ostype", limit=100) == b"Linux\n"
    assert read_regular("/proc/sys/kernel/ostype", limit=6) == b"Linux\n"
    with pytest.raises(ReadError, match="^/proc/sys/kernel/ostype: larger than 5 bytes, not read$"):
        read_regular("/proc/sys/kernel/ostype", limit=5)


def test_a_file_read_in_many_short_reads_is_read_whole_and_capped() -> None:
    """sysfs hands out at most a page per read(2), procfs's seq files a page of whole lines."""
    btf = Path("/sys/kernel/btf/vmlinux")  # megabytes, its true size in fstat
    assert read_regular(btf, limit=btf.stat().st_size) == btf.read_bytes()
    with pytest.raises(ReadError, match="^/proc/kallsyms: larger than 100000 bytes, not read$"):
        read_regular("/proc/kallsyms", limit=100_000)  # megabytes too, and its size says 0


def test_a_procfs_file_ending_a_read_exactly_at_the_limit_is_still_refused() -> None:
    with open("/proc/kallsyms", "rb", buffering=0) as fh:
        first = len(fh.read(1 << 16))  # whole lines up to a page: the first read(2) stops here
    with pytest.raises(ReadError, match=f"^/proc/kallsyms: larger than {first} bytes, not read$"):
        read_regular("/proc/kallsyms", limit=first)


def test_a_read_failing_is_one_line_with_the_reason() -> None:
    """/proc/self/mem at offset 0 (never mapped): a regular file whose read(2) fails with EIO."""
    with pytest.raises(ReadError) as caught:
        read_regular("/proc/self/mem", limit=100)
    assert str(caught.value) == "cannot read /proc/self/mem: Input/output error"


def test_a_symlink_the_operator_typed_is_followed_unless_told_not_to(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert read_regular(tmp_path / "link", limit=100) == b"x\n"
    assert read_regular(tmp_path / "link", limit=100, follow=True) == b"x\n"
    with pytest.raises(ReadError, match="is a symlink: not read$"):
        read_regular(tmp_path / "link", limit=100, follow=False)


def test_a_file_that_cannot_be_opened_is_one_line_with_the_reason(tmp_path: Path) -> None:
    """A UNIX socket cannot be opened at all (ENXIO): the reason, not a symlink story."""
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(path))
        for follow in (True, False):
            with pytest.raises(ReadError) as caught:
                read_regular(path, limit=100, follow=follow)
            assert str(caught.value) == f"cannot read {path}: No such device or address"


def test_is_regular_only_for_a_regular_file_itself(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert is_regular(tmp_path / "file")
    assert not is_regular(tmp_path / "link") and not is_regular(tmp_path)
    assert not is_regular(tmp_path / "missing")


def test_a_trusted_file_others_may_write_is_read_from_a_read_only_mount(tmp_path: Path) -> None:
    """Like a ConfigMap's file: mode 0666, but on a read-only mount nobody can write it."""
    base = tmp_path / "cm"
    base.mkdir(mode=0o755)
    (base / "config.toml").write_text("mine\n")
    assert read_regular(base / "config.toml", limit=100, trusted=True) == b"mine\n"  # 0644: trusted anywhere
    pid = os.fork()
    if pid == 0:  # the child: its own mount namespace, so the mounts go with it
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
                os._exit(10)
            for argv in (["mount", "--make-rprivate", "/"],
                         ["mount", "-t", "tmpfs", "-o", "mode=0755", "cm", str(base)]):
                subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
            (base / "config.toml").write_text("shared\n")
            (base / "config.toml").chmod(0o666)
            writable = _verdict(base / "config.toml")
            subprocess.run(["mount", "-o", "remount,ro", str(base)], check=True, stdin=subprocess.DEVNULL)
            os._exit(writable * 2 + _verdict(base / "config.toml"))
        finally:
            os._exit(11)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 2  # refused (1) while writable, read (0) once read-only


def _verdict(path: Path) -> int:
    try:
        return 0 if read_regular(path, limit=100, trusted=True) == b"shared\n" else 3
    except ReadError:
        return 1
