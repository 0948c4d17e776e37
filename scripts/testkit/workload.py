"""The start-up workload of the capture tests: a libc-free static binary and its image.

``workload.c`` reads the files named on its command line, in order, one every INTERVAL_US,
from its very first instruction. The image holds the binary at ``/workload`` and the files of
``STARTUP_FILES`` (plus one that is never read); its entry point reads them and then exits or
stays, as asked.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "workload.c"
ENTRYPOINT = "/workload"
INTERVAL_US = 1000
DONE_LINE = "workload: start-up files read"  # printed once every file is read

# Read in this order at start-up. Names with a space, a comma and non-ASCII letters check that
# paths survive the tracer, the plain list and the csv quoting unchanged.
STARTUP_FILES: tuple[str, ...] = (
    *(f"/data/f{i:02d}.bin" for i in range(40)),
    "/data/name with space.txt",
    "/data/comma,name.txt",
    "/data/ünïcødé.txt",
    "/etc/workload/last.conf",
)
UNREAD_FILES: tuple[str, ...] = ("/data/unused.bin",)


def build_binary(out_dir: Path) -> Path:
    """Compile the workload (gcc -static, no libc) into *out_dir*; returns the binary's path."""
    out = out_dir / "workload"
    subprocess.run(
        ["gcc", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-O2",
         "-o", str(out), str(SOURCE)],
        check=True, capture_output=True,
    )
    return out


def file_sizes() -> dict[str, int]:
    """Deterministic, distinct sizes: 1 KiB .. ~80 KiB."""
    rng = random.Random(6)
    return {path: 1024 + i * 2048 + rng.randrange(512) for i, path in enumerate(STARTUP_FILES + UNREAD_FILES)}


def image_files(binary: Path) -> dict[str, object]:
    """Path -> content for the image builder (``scripts/sandbox/images.py``)."""
    from sandbox.images import File

    files: dict[str, object] = {ENTRYPOINT: File(binary.read_bytes(), 0o755)}
    rng = random.Random(7)
    for path, size in file_sizes().items():
        files[path] = rng.randbytes(size)
    return files


def command(mode: str = "exit", files: Sequence[str] = STARTUP_FILES, interval_us: int = INTERVAL_US) -> list[str]:
    """Container command: ``/workload exit|stay INTERVAL_US FILE...``."""
    return [ENTRYPOINT, mode, str(interval_us), *files]
