"""The nydus-top command in a process of its own, for tests of hostile files: a command that
hangs (on a FIFO, a quadratic read) fails the test instead of hanging it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HANG = 120  # seconds: far beyond what any command on a test's files takes on a loaded node; a hang is forever


def nydus_top(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -I -m nydus_top ARGS``, its output captured; the test fails if it runs past HANG."""
    try:
        return subprocess.run([sys.executable, "-I", "-m", "nydus_top", *map(str, args)], capture_output=True,
                              text=True, timeout=HANG, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nydus-top {' '.join(map(str, args))} hung for {HANG} s")


def config_for(tmp_path: Path) -> Path:
    """A config (mode 0600) whose persist_dir is ``tmp_path/persist``."""
    persist = tmp_path / "persist"
    persist.mkdir(mode=0o755, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(f'persist_dir = "{persist}"\n')
    path.chmod(0o600)
    return path
