"""Image layers on a loop-mounted ext4 held by a private mount namespace, and home-made
containers whose lower layer lives there (shared by tests/ranges and bench/range_bench.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import BinaryIO

from testkit.container import Container


class LayerFs:
    """A filesystem mounted in a private namespace; ``path`` is its root as a host path."""

    def __init__(self, base: Path, fstype: str) -> None:
        self.mnt = base / "mnt"
        self.mnt.mkdir()
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "cat"],
                                       stdin=subprocess.PIPE)
        if fstype == "ext4":
            image = base / "layers.img"
            with image.open("wb") as f:
                f.truncate(512 << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
            mount = ["mount", "-o", "loop", str(image), str(self.mnt)]
        else:
            mount = ["mount", "-t", fstype, fstype, str(self.mnt)]
        subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", *mount], check=True)
        (base / "tmpfs").mkdir()  # and a tmpfs beside it: no pre-content events there
        subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "mount", "-t", "tmpfs", "tmpfs",
                        str(base / "tmpfs")], check=True)
        self.base = base
        self.tmpfs = Path(f"/proc/{self.holder.pid}/root{base}/tmpfs")
        self.path = Path(f"/proc/{self.holder.pid}/root{self.mnt}")  # from the test's namespace
        self.bin = base / "bin"
        self.bin.mkdir()

    def wrap(self, program: str | Path) -> Path:
        """A script that runs ``program`` (with its arguments and fds) in the holder's namespace."""
        script = self.bin / Path(program).name
        script.write_text(f'#!/bin/sh\nexec nsenter -t {self.holder.pid} -m -- {program} "$@"\n')
        script.chmod(0o755)
        return script

    def inside(self, host_path: Path) -> Path:
        """The holder's own path for a path under ``self.path`` or ``self.tmpfs``."""
        if host_path.is_relative_to(self.tmpfs):
            return self.base / "tmpfs" / host_path.relative_to(self.tmpfs)
        return self.mnt / host_path.relative_to(self.path)

    def close(self) -> None:
        assert self.holder.stdin is not None
        self.holder.stdin.close()  # the namespace, its mount and its loop device go with it
        self.holder.wait(10)


class LayerContainer(Container):
    """A :class:`Container` whose lower layer is an existing directory on a LayerFs (shared by
    every container of the same image: files are added, nothing is rewritten)."""

    def __init__(self, root: Path, progs: dict[str, Path], fs: LayerFs, lower: Path,
                 files: dict[str, bytes | int], steps: list[str]) -> None:
        self.root = root
        scratch, merged = root / "scratch", root / "merged"
        for d in (scratch, merged, lower / "proc", lower / "old", lower / "bin"):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("probe", "bin/tool"):
            if not (lower / name).exists():
                (lower / name).write_bytes(progs["probe"].read_bytes())
                (lower / name).chmod(0o755)
        for rel, content in files.items():
            p = lower / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            with p.open("wb") as f:
                if isinstance(content, int):  # a file of that size, every byte written
                    f.write(os.urandom(content))
                else:
                    f.write(content)
                out_of_page_cache(f)
        self._go_r, self._go_w = os.pipe()
        self._note_r, self._note_w = os.pipe()
        argv = [str(progs["ctr"]), str(fs.inside(lower)), str(scratch), str(merged), "/probe"]
        argv += [s.format(go=self._go_r, note=self._note_w) for s in steps]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=(self._go_r, self._note_w))
        os.close(self._go_r)
        os.close(self._note_w)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"container failed: {self.proc.stderr.read().decode()!r}")
        self.pid = int(line)


def out_of_page_cache(f: BinaryIO) -> None:
    """Written, then evicted: an image's files start out of the page cache, as a lazily pulled
    image's do at its first start. A warm file may sit in 2 MiB folios, and a mapping that
    happens to be 2 MiB aligned then maps a whole folio at one touch."""
    f.flush()  # what the file object still buffers (a small file's bytes) is written first
    os.fsync(f.fileno())
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
