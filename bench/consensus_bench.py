"""Consensus of many runs against its targets, each phase in a fresh process (peak RSS is per process).

* tally: 100 runs of 10k files (90 % shared in a stable order, 10 % unique per run) counted from
  entries already in memory, then the stability table and the consensus at 0.5;
* files: the same runs saved as lists (+ csv) in a temp dir, loaded one by one and counted, as
  ``nydus-top consensus`` does;
* baseline: the naive way on the same in-memory runs: a dict of Python lists of positions, and
  ``statistics.median`` per file.

Targets (issue 13): at most 1 s and 200 MB for 100 runs of 10k files. Prints seconds, peak RSS
and the ratio to each target (below 1.0 meets it), and each phase's CPU seconds (the machine's
load moves wall time: compare CPU side by side).

Usage: ``.venv/bin/python bench/consensus_bench.py [--runs 100] [--files 10000] [--quick]``
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

TARGET_S = 1.0
TARGET_MB = 200.0


def phase(name: str, count: int, files: int) -> None:
    from nydus_top.lists.files import save_list
    from nydus_top.model.records import ListedFile
    from nydus_top.runs.consensus import Tally

    data = benchkit.start_runs(count, files)
    if name in ("tally", "baseline"):
        data = [[ListedFile(*e) for e in run] for run in data]  # runs already loaded, as in the app
    if name == "files":
        work = Path(tempfile.mkdtemp(prefix="nydus-top-consensus-"))
        paths = []
        for n, run in enumerate(data):
            paths.append(work / f"run{n}")
            save_list([ListedFile(*e) for e in run], paths[-1])
        del data
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    if name == "tally":
        tally = Tally()
        for run in data:
            tally.add(run)
        chosen = tally.consensus(0.5)
    elif name == "files":
        from nydus_top.commands.consensus import tally_of  # what `nydus-top consensus` runs

        tally = tally_of(paths)[0]
        chosen = tally.consensus(0.5)
    else:
        seen: dict[str, list[int]] = {}
        for run in data:
            for pos, entry in enumerate(run):
                seen.setdefault(entry.path, []).append(pos)
        chosen = sorted((statistics.median(v), p) for p, v in seen.items() if len(v) * 2 >= count)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.3f} {peak_mb:.1f} {base_rss / 1024:.1f} {len(chosen)} {cpu:.3f}")


def main() -> None:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--runs", type=int, default=100, help="runs counted together (default 100)")
    ap.add_argument("--files", type=int, default=10_000, help="files a run (default 10000)")
    args = ap.parse_args()
    count, files = (5, 200) if args.quick else (args.runs, args.files)
    print(f"consensus of {count} runs x {files} files (targets: {TARGET_S:.0f} s, {TARGET_MB:.0f} MB)")
    print(f"{'phase':<9} {'seconds':>8} {'x target':>8} {'peak MB':>8} {'x target':>8} {'(input MB)':>10} {'kept':>6}"
          f" {'cpu s':>6}")
    for name in ("tally", "files", "baseline"):
        out = subprocess.run([sys.executable, __file__, "--phase", name, str(count), str(files)],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds, peak, base, kept = float(out[0]), float(out[1]), float(out[2]), int(out[3])
        print(f"{name:<9} {seconds:8.3f} {seconds / TARGET_S:8.2f} {peak:8.1f} {peak / TARGET_MB:8.2f}"
              f" {base:10.1f} {kept:6d} {float(out[4]):6.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
