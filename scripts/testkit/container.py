"""Home-made test containers: overlayfs rootfs (upper layer on a tmpfs), private mount and pid
namespaces, pivot_root.

The workload is ``probe`` (progs/probe.c), a static binary driven by its arguments; it talks to
the test through two pipes, ``go`` (test -> container) and ``note`` (container -> test).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

PROGS = Path(__file__).resolve().parents[2] / "tests" / "tracer" / "progs"


def build_progs(dest: Path) -> dict[str, Path]:
    """Compile the static test programs into ``dest``."""
    out = {}
    for name in ("ctr", "probe"):
        out[name] = dest / name
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out[name]), str(PROGS / f"{name}.c")],
                       check=True, capture_output=True)
    return out


class Container:
    """A running container; ``steps`` may use ``{go}`` and ``{note}`` for the pipe fds.
    ``files`` values: bytes (content), str (symlink target) or int (sparse file size)."""

    def __init__(self, root: Path, progs: dict[str, Path], files: dict[str, bytes | str | int],
                 steps: list[str]) -> None:
        self.root = root
        lower, scratch, merged = (root / d for d in ("lower", "scratch", "merged"))
        for d in (lower, scratch, merged, lower / "proc", lower / "old", lower / "bin"):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copy(progs["probe"], lower / "probe")
        shutil.copy(progs["probe"], lower / "bin/tool")  # a second binary (inode) for exec events
        for rel, content in files.items():
            p = lower / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):  # a symlink target
                p.symlink_to(content)
            elif isinstance(content, int):  # a sparse file of that size
                with p.open("wb") as f:
                    f.truncate(content)
            else:
                p.write_bytes(content)
        self._go_r, self._go_w = os.pipe()
        self._note_r, self._note_w = os.pipe()
        argv = [str(progs["ctr"]), str(lower), str(scratch), str(merged), "/probe"]
        argv += [s.format(go=self._go_r, note=self._note_w) for s in steps]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=(self._go_r, self._note_w))
        os.close(self._go_r)
        os.close(self._note_w)
        assert self.proc.stdout is not None
        self.pid = int(self.proc.stdout.readline())

    def go(self) -> None:
        os.write(self._go_w, b"g")

    def wait_note(self, timeout: float = 10.0) -> bytes:
        """Wait for the container to write to the note pipe; returns what it wrote."""
        if not select.select([self._note_r], [], [], timeout)[0]:
            raise TimeoutError("container did not signal")
        return os.read(self._note_r, 65536)

    def finish(self, timeout: float = 10.0) -> int:
        """Close the go pipe (a waiting probe exits) and reap the container."""
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._note_r >= 0:
            os.close(self._note_r)
            self._note_r = -1
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code
