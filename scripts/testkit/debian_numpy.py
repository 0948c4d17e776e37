"""A root file system holding Debian bookworm's python3.11 and python3-numpy, for test containers
that load arrays the way AI images do (``numpy.load(mmap_mode='r')``).

Built from the archive's packages with :mod:`sandbox.aptfetch` (the machine's apt mirror) and
kept in the sandbox cache: the first build on a machine downloads about 25 MB (a few minutes,
most of it the private ``apt-get update``); later ones copy nothing and return at once. The
alternatives Debian's maintainer scripts would set (``libblas.so.3``, ``liblapack.so.3``) are made
by hand: nothing of the packages runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from sandbox.aptfetch import AptCache, cache_dir, file_lock

SUITE = "bookworm"
PACKAGES = ("libc6", "libgcc-s1", "zlib1g", "libexpat1", "libffi8", "python3.11-minimal",
            "libpython3.11-minimal", "libpython3.11-stdlib", "python3-numpy", "libblas3", "liblapack3",
            "libgfortran5", "libquadmath0")
PYTHON = "/usr/bin/python3.11"
_ALTERNATIVES = {"usr/lib/x86_64-linux-gnu/libblas.so.3": "blas/libblas.so.3",
                 "usr/lib/x86_64-linux-gnu/liblapack.so.3": "lapack/liblapack.so.3"}
_LEFT_OUT = ("tests", "doc", "man")  # directory names not copied: nothing imports them


def numpy_root() -> Path:
    """The root (a directory in the sandbox cache, never to be written to)."""
    apt = AptCache()
    trees = [apt.unpacked(package, SUITE) for package in PACKAGES]
    key = hashlib.sha256("\n".join(t.name for t in trees).encode()).hexdigest()[:16]
    root = cache_dir() / "roots" / f"numpy-{SUITE}-{key}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / ".lock", 600.0):
        if not root.is_dir():
            _build(trees, root)
    return root


def _build(trees: list[Path], root: Path) -> None:
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".build-") as tmp:
        staged = Path(tmp) / "root"
        for tree in trees:
            shutil.copytree(tree, staged, symlinks=True, dirs_exist_ok=True,
                            ignore=lambda _d, names: [n for n in names if n in _LEFT_OUT])
        for link, target in _ALTERNATIVES.items():
            os.symlink(target, staged / link)
        staged.rename(root)


def npy_header(rows: int) -> bytes:
    """The header of a version 1.0 ``.npy`` file of ``rows`` little-endian float64 values (the data
    follows it): the format is small enough to write without numpy on the host."""
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows},), }}"
    pad = -(10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body
