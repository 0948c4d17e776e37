"""Consensus of huge lists: peak memory of ``nydus-top consensus`` over one list of N entries.

A 3M-entry list (paths of about 60 bytes, as a recorder writes them: list, csv with sizes and
first-access times) is counted by ``nydus-top consensus LIST -o OUT`` in a fresh process; its
peak RSS (``ru_maxrss`` of the child) is printed beside the target with their ratio (below 1.0
meets it), and the seconds it took. A second run counts two such lists (two runs sharing 90 % of
their paths).

Target (issue 18, item 7): consensus of a 3M-entry list under 512 MiB.

Usage: ``.venv/bin/python bench/consensus_huge.py [--quick] [--entries N] [--runs R]`` (``--quick``: 300k
entries, the target scaled to a tenth above the interpreter's own 40 MiB)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

TARGET_MIB = 512.0
ENTRIES = 3_000_000
BASE_MIB = 40.0  # the interpreter with nydus_top's imports, before any list


def write_list(path: Path, entries: int, salt: int) -> None:
    """A saved list as the recorder writes it (plain list + csv), without its metadata."""
    with open(path, "w") as plain, open(f"{path}.csv", "w") as csv:
        csv.write("path,size,elapsed\n")
        for i in range(entries):
            name = (f"/usr/lib/python3/dist-packages/pkg{i % 997:03d}/module_{i:08d}.py" if i % 10
                    else f"/tmp/run{salt}/cache/{i:08d}.pyc")
            plain.write(name + "\n")
            csv.write(f"{name},{1000 + i % 5000},{i * 3}\n")


def measure(lists: list[Path], out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of one ``nydus-top consensus`` over *lists*."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-m", "nydus_top.cli", "consensus", *map(str, lists), "-o", str(out),
                    "--force"], check=True, capture_output=True, cwd="/")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise SystemExit("the child's peak RSS is not above an earlier child's: run one measurement per process")
    return peak / 1024, seconds


def main() -> None:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--entries", type=int, help=f"entries a list (default {ENTRIES}; --quick: a tenth)")
    ap.add_argument("--runs", type=int, default=1, help="lists counted together (default 1)")
    args = ap.parse_args()
    entries = args.entries or (ENTRIES // 10 if args.quick else ENTRIES)
    target = BASE_MIB + (TARGET_MIB - BASE_MIB) * entries / ENTRIES
    runs = args.runs
    with tempfile.TemporaryDirectory(prefix="nydus-top-huge-") as work:
        lists = [Path(work) / f"run{n}" for n in range(runs)]
        for n, path in enumerate(lists):
            write_list(path, entries, n)
        size = sum(Path(f"{p}.csv").stat().st_size for p in lists) / (1 << 20)
        peak, seconds = measure(lists, Path(work) / "out")
    print(f"consensus of {runs} list(s) of {entries} entries ({size:.0f} MiB of csv): peak RSS {peak:.0f} MiB, "
          f"target {target:.0f} MiB, ratio {peak / target:.2f}; {seconds:.1f} s")


if __name__ == "__main__":
    main()
