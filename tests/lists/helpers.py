"""Test helpers: a private mount namespace kept alive while a test runs, the nydusify stand-in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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


