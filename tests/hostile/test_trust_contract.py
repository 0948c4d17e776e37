"""The trust checks' edges (nydus_top/fs/trust.py) in this process: a directory above on a
read-only mount, an owner check that is not root's, lstat errors in one line, and "/" itself.
Written to kill the mutants scripts/mutation found surviving (issue 18 item 21); each asserts
documented behaviour."""

from __future__ import annotations

import ctypes
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from nydus_top.fs.trust import UntrustedError, check_dir, check_info, check_parents

CLONE_NEWNS = 0x00020000
NOBODY = 65534


def test_a_directory_above_on_a_read_only_mount_is_trusted_whatever_its_mode(tmp_path: Path) -> None:
    """Like a ConfigMap's: mode 0777 (not sticky), but nobody can write it."""
    base = tmp_path / "cm"
    base.mkdir(mode=0o700)
    assert _verdict(base / "persist") == 0  # the mount point itself, before the mount: ours, 0700
    pid = os.fork()
    if pid == 0:  # the child: its own mount namespace, so the mounts go with it
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
                os._exit(10)
            for argv in (["mount", "--make-rprivate", "/"],
                         ["mount", "-t", "tmpfs", "-o", "mode=0777", "cm", str(base)]):
                subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
            (base / "sub").mkdir(mode=0o755)
            writable = _verdict(base / "sub" / "persist")
            subprocess.run(["mount", "-o", "remount,ro", str(base)], check=True, stdin=subprocess.DEVNULL)
            os._exit(writable * 2 + _verdict(base / "sub" / "persist"))
        finally:
            os._exit(11)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 2  # refused (1) while writable, trusted (0) once read-only


def _verdict(path: Path) -> int:
    try:
        check_dir(path)
    except UntrustedError:
        return 1
    return 0


def test_as_another_user_root_and_that_user_are_the_owners_trusted(tmp_path: Path) -> None:
    mine = os.stat_result((stat.S_IFREG | 0o644, 1, 1, 1, NOBODY, 0, 0, 0, 0, 0))
    roots = os.stat_result((stat.S_IFREG | 0o644, 1, 1, 1, 0, 0, 0, 0, 0, 0))
    others = os.stat_result((stat.S_IFREG | 0o644, 1, 1, 1, 1, 0, 0, 0, 0, 0))
    os.seteuid(NOBODY)
    try:
        check_info(mine, "/etc/nydus-top/config.toml")
        check_info(roots, "/etc/nydus-top/config.toml")
        with pytest.raises(UntrustedError, match=f"^/x is owned by uid 1, not root or uid {NOBODY}$"):
            check_info(others, "/x")
    finally:
        os.seteuid(0)
    with pytest.raises(UntrustedError, match="^/x is owned by uid 1, not root$"):
        check_info(others, "/x")


def test_a_path_that_cannot_be_checked_is_refused_in_one_line(tmp_path: Path) -> None:
    long = tmp_path / ("a" * 300)
    with pytest.raises(UntrustedError, match=f"^cannot check {re.escape(str(long / 'persist'))}: File name too long$"):
        check_dir(long / "persist")
    with pytest.raises(UntrustedError, match=f"^cannot check {re.escape(str(long))}: File name too long$"):
        check_parents(str(long / "config.toml"))


def test_the_root_directory_is_trusted() -> None:
    check_dir("/")
    check_parents("/etc")
