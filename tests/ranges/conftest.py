"""Fixtures of the range tracer tests: image layers on a loop-mounted ext4 (or a tmpfs) that
only a private mount namespace holds, and home-made containers whose lower layer lives there.

That namespace (held by a ``cat`` process) plays the node's host namespace: the tracer pool and
the container launcher run in it (through ``nsenter``), so the range tracer marks the lower
directories by the paths the overlay mount names, as on a node. Test code reaches the layers
from outside through ``/proc/<holder>/root``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_top.tracer import TracerPool
from tracer.container import Container, build_progs


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


@pytest.fixture(scope="session")
def ext4_layers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LayerFs]:
    fs = LayerFs(tmp_path_factory.mktemp("layers"), "ext4")
    try:
        yield fs
    finally:
        fs.close()


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory, ext4_layers: LayerFs) -> dict[str, Path]:
    built = build_progs(tmp_path_factory.mktemp("progs"))
    return {"probe": built["probe"], "ctr": ext4_layers.wrap(built["ctr"])}


@pytest.fixture(scope="session")
def pool(ext4_layers: LayerFs) -> Iterator[TracerPool]:
    """A tracer pool whose helper lives in the layers' namespace (the stand-in host namespace)."""
    with TracerPool(python=str(ext4_layers.wrap(sys.executable))) as p:
        p.warm_up()
        yield p


@pytest.fixture
def image(request: pytest.FixtureRequest, ext4_layers: LayerFs) -> Path:
    """A fresh lower directory on the ext4 layer filesystem (one image), as a test-side path."""
    lower = ext4_layers.path / request.node.name[:60]
    lower.mkdir()
    return lower


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


@pytest.fixture
def container(tmp_path: Path, progs: dict[str, Path], ext4_layers: LayerFs) -> Iterator:
    """Factory: ``container(lower, files, steps)``; all are finished at teardown."""
    made: list[Container] = []

    def make(lower: Path, files: dict[str, bytes | int], steps: list[str]) -> Container:
        root = tmp_path / f"c{len(made)}"
        root.mkdir()
        c = LayerContainer(root, progs, ext4_layers, lower, files, steps)
        made.append(c)
        return c

    yield make
    for c in made:
        c.finish()
