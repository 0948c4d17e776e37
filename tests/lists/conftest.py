"""Helpers for the list/config/overlay/conversion tests: real mounts in private mount namespaces."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAKE_NYDUSIFY = HERE / "fake_nydusify"


@contextmanager
def in_private_namespace(setup: str, args: Sequence[str] = ()) -> Iterator[subprocess.Popen[str]]:
    """Run Python *setup* in a new private mount namespace; yield once it printed ``ready``.

    The process then blocks on stdin until the context exits, so its mounts stay up and can be
    reached from here through ``/proc/<pid>/root``. Nothing is mounted in our namespace.
    """
    script = setup + "\nprint('ready', flush=True)\nimport sys\nsys.stdin.read()\n"
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = proc.stdout.readline()
        if line != "ready\n":
            proc.kill()
            raise AssertionError(f"namespace setup failed: {line!r} {proc.communicate()[1]}")
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted only in a private mount namespace; yields its path as seen from here."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    setup = ("import subprocess, sys\n"
             "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tiny', sys.argv[1]], check=True)")
    with in_private_namespace(setup, [str(mnt)]) as proc:
        yield Path(f"/proc/{proc.pid}/root{mnt}")
