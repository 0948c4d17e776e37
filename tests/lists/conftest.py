"""Fixtures for the list/config/overlay/conversion tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import in_private_namespace


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted only in a private mount namespace; yields its path as seen from here."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    setup = ("import subprocess, sys\n"
             "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tiny', sys.argv[1]], check=True)")
    with in_private_namespace(setup, [str(mnt)]) as proc:
        yield Path(f"/proc/{proc.pid}/root{mnt}")
