"""Consensus of huge lists: peak memory of ``nydus-top consensus`` over one list of N entries.

A 3M-entry list (paths of about 60 bytes, as a recorder writes them: list, csv with sizes and
first-access times) is counted by ``nydus-top consensus LIST -o OUT`` in a fresh process; its
peak RSS (the child's own ``VmHWM``) is printed beside the target with their ratio (below 1.0
meets it), and the seconds it took. A second run counts two such lists (two runs sharing 90 % of
their paths).

A third measurement counts one list of 100k files whose ``.ranges.json`` holds 8M byte ranges
(80 a file, compact JSON as another tool writes it: about 150 MiB, under the 256 MiB a range
list may be).

Targets (issue 18, item 7): consensus of a 3M-entry list under 512 MiB; of the 8M-range list
under 512 MiB too (the ranges themselves are 8M x 16 bytes = 128 MiB as two 64-bit arrays, and
the JSON text is read whole: 150 MiB; the rest is the interpreter and one file's ranges at a
time).

Usage: ``.venv/bin/python bench/consensus_huge.py [--quick] [--entries N] [--runs R] [--ranges N]``
(``--quick``: a tenth of the entries and a twentieth of the ranges, the targets scaled alike
above the interpreter's own 40 MiB)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

TARGET_MIB = 512.0
ENTRIES = 3_000_000
RANGES = 8_000_000
RANGE_FILES = 100_000
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


def write_ranged(path: Path, ranges: int, files: int) -> None:
    """A list of *files* files and its range list of *ranges* ranges, spread evenly (none touch)."""
    each = max(1, ranges // files)
    names = [f"/srv/data/part{i % 97:02d}/chunk_{i:08d}.bin" for i in range(files)]
    path.write_text("".join(f"{name}\n" for name in names))
    Path(f"{path}.csv").write_text("path,size,elapsed\n" + "".join(f"{name},{each * 8192},{i}\n"
                                                                    for i, name in enumerate(names)))
    with open(f"{path}.ranges.json", "w") as out:
        out.write('{"version":"v1","files":[')
        for i, name in enumerate(names):
            pairs = ",".join(f"[{k * 8192},4096]" for k in range(each))
            out.write(f'{"," if i else ""}{{"path":"{name}","ranges":[{pairs}]}}')
        out.write("]}\n")


# The child's own peak (VmHWM): ru_maxrss of children would carry an earlier child's peak.
CHILD = """
import re, sys
from nydus_top.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1], file=sys.stderr)
sys.exit(code)
"""


def measure(lists: list[Path], out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of one ``nydus-top consensus`` over *lists*."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-I", "-c", CHILD, "consensus", *map(str, lists), "-o", str(out),
                           "--force"], check=True, capture_output=True, text=True, cwd="/")
    return int(done.stderr.splitlines()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--entries", type=int, help=f"entries a list (default {ENTRIES}; --quick: a tenth)")
    ap.add_argument("--runs", type=int, default=1, help="lists counted together (default 1)")
    ap.add_argument("--ranges", type=int, help=f"ranges in the range list (default {RANGES}; --quick: a twentieth; "
                    "0: skip that measurement)")
    args = ap.parse_args()
    entries = args.entries or (ENTRIES // 10 if args.quick else ENTRIES)
    ranges = args.ranges if args.ranges is not None else RANGES // 20 if args.quick else RANGES
    runs = args.runs
    with tempfile.TemporaryDirectory(prefix="nydus-top-huge-") as work:
        lists = [Path(work) / f"run{n}" for n in range(runs)]
        for n, path in enumerate(lists):
            write_list(path, entries, n)
        size = sum(Path(f"{p}.csv").stat().st_size for p in lists) / (1 << 20)
        peak, seconds = measure(lists, Path(work) / "out")
        for path in lists:
            for sibling in (path, Path(f"{path}.csv")):
                sibling.unlink()
        report(f"consensus of {runs} list(s) of {entries} entries ({size:.0f} MiB of csv)", peak, seconds,
               entries / ENTRIES)
        if ranges:
            ranged = Path(work) / "ranged"
            write_ranged(ranged, ranges, max(1, RANGE_FILES * ranges // RANGES))
            size = Path(f"{ranged}.ranges.json").stat().st_size / (1 << 20)
            peak, seconds = measure([ranged], Path(work) / "out-ranged")
            report(f"consensus of a list with {ranges} ranges ({size:.0f} MiB of range list)", peak, seconds,
                   ranges / RANGES)


def report(what: str, peak: float, seconds: float, scale: float) -> None:
    """One measurement beside its target (scaled to *scale* of the full size above BASE_MIB)."""
    target = BASE_MIB + (TARGET_MIB - BASE_MIB) * scale
    print(f"{what}: peak RSS {peak:.0f} MiB, target {target:.0f} MiB, ratio {peak / target:.2f}; {seconds:.1f} s",
          flush=True)


if __name__ == "__main__":
    main()
