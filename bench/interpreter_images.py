"""Real interpreter start-ups for bench/startup_capture.py: Python and Perl images made of this
host's own Debian files.

An image holds what one start of the command opens on the host (found with strace, run with the
environment containerd gives a container of the image: its PATH and HOME=/root): the executable, its ELF
interpreter, the libraries, modules and data files, reached through the same symlinks as on the host; for Python
also the sources of the ``.pyc`` files it reads (the import system checks them by mtime, which the image keeps)
and the ``os.py`` landmark. Left out: what the host adds to every interpreter (``/usr/local``, Python's
``dist-packages``), and anything that is not a regular file. The expected start-up list is those
files by their real paths (what fanotify reports), in the order of first access.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.images import Symlink

CONTAINER_ENV = {"PATH": "/bin:/usr/bin:/sbin:/usr/sbin", "HOME": "/root"}  # sandbox images' PATH
LEFT_OUT = ("/usr/local/", "/usr/lib/python3/dist-packages/", "/proc/", "/sys/", "/dev/", "/tmp/")
_OPEN = re.compile(r'^\d+ +(?:openat\(AT_FDCWD, |open\()"([^"\\]+)", ([A-Z_|]+)[^=]*= (\d+)$')
_EXEC = re.compile(r'^\d+ +execve\("([^"\\]+)", .*= 0$')


@dataclass(frozen=True)
class InterpreterStart:
    name: str
    image: str
    command: tuple[str, ...]


STARTS = {
    "python": InterpreterStart("python", "nydus-top.local/python-start:1",
                               ("/usr/bin/python3.11", "-c", "import json, logging, argparse, decimal")),
    "perl": InterpreterStart("perl", "nydus-top.local/perl-start:1",
                             ("/usr/bin/perl", "-MPOSIX", "-MData::Dumper", "-MGetopt::Long", "-e", "1")),
}


def ensure_strace() -> None:
    if shutil.which("strace") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "strace"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def elf_interpreter(path: str) -> str | None:
    """PT_INTERP of a 64-bit little-endian ELF executable."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def opened_files(command: tuple[str, ...]) -> list[str]:
    """Paths one start of *command* on the host executes or opens (regular files), as written."""
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve,open,openat", "-o", "/dev/stdout",
                          *command], capture_output=True, text=True, env=CONTAINER_ENV, check=True, cwd="/").stdout
    paths = []
    for line in out.splitlines():
        if m := _EXEC.match(line):
            paths.append(m[1])
            if interp := elf_interpreter(m[1]):
                paths.append(interp)
        elif (m := _OPEN.match(line)) and "O_DIRECTORY" not in m[2]:
            paths.append(m[1])
    return paths


def _add(files: dict[str, object], path: str, depth: int = 0) -> str:
    """Put host *path* into *files* with every symlink on its way; returns its real path."""
    if depth > 40:
        raise RuntimeError(f"symlink loop at {path}")
    parts = Path(path).parts[1:]
    cur = "/"
    for i, part in enumerate(parts):
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            files[nxt] = Symlink(target)
            return _add(files, os.path.normpath(os.path.join(cur, target, *parts[i + 1:])), depth + 1)
        cur = nxt
    files[cur] = Path(cur)
    return cur


def image_and_list(start: InterpreterStart) -> tuple[dict[str, object], list[str]]:
    """Image content and the expected start-up list (real paths, first access order)."""
    files: dict[str, object] = {}
    expected: list[str] = []
    for path in opened_files(start.command):
        real = os.path.realpath(path)
        if real.startswith(LEFT_OUT) or not os.path.isfile(real):
            continue
        real = _add(files, path)
        if real not in expected:
            expected.append(real)
        if (m := re.fullmatch(r"(.*)/__pycache__/([^/.]+)\.cpython-\d+\.pyc", real)) and \
                os.path.isfile(source := f"{m[1]}/{m[2]}.py"):
            _add(files, source)
    if start.name == "python":
        _add(files, "/usr/lib/python3.11/os.py")  # the prefix landmark
    return files, expected
