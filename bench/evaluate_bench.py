"""Evaluating a list against many runs (issue 21), each phase in a fresh process (peak RSS is per process).

* list: 100 runs of 10k files (90 % shared in a stable order, 10 % unique per run), already in
  memory, added to an evaluation table, then every run scored against a 10k-entry list
  (``runs.evaluate.score_list``);
* files: the same runs saved as lists (+ csv), loaded one by one into the table and scored, as
  ``nydus-top evaluate LIST RUNS...`` does (loading included);
* loo: every run against the consensus (at 0.5) of the other 99 (``leave_one_out``), as
  ``nydus-top consensus`` prints it;
* auto (only with ``--auto``): the sweep of ``--min-share auto`` (20 shares x 100 leave-one-outs);
  no target, printed for the record.

Target (issue 21): at most 2 s and 300 MB for a 10k-entry list against 100 runs (list, files and
loo are held to it). Prints seconds, peak RSS and the ratio to each target (below 1.0 meets it).
The machine's load matters: run it beside other measurements, not alone, and compare ratios.

Usage: ``.venv/bin/python bench/evaluate_bench.py [--runs 100] [--files 10000] [--auto] [--quick]``
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

TARGET_S = 2.0
TARGET_MB = 300.0


def phase(name: str, count: int, files: int) -> None:
    from nydus_top.lists.files import save_list
    from nydus_top.model.records import ListedFile
    from nydus_top.runs import evaluate as ev

    data = benchkit.start_runs(count, files)
    listed = [ListedFile(p, size) for p, size, _ in data[0]]  # a 10k-entry list: the first run's files
    link = ev.Link()
    paths: list[Path] = []
    loaded: list[list[ListedFile]] = []
    if name == "files":
        work = Path(tempfile.mkdtemp(prefix="nydus-top-evaluate-"))
        for n, run in enumerate(data):
            paths.append(work / f"run{n}")
            save_list([ListedFile(*e) for e in run], paths[-1])
    else:
        loaded = [[ListedFile(*e) for e in run] for run in data]  # runs already loaded, as in the app
    del data
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    table = ev.Table()
    if name == "files":  # as `nydus-top evaluate` reads its runs
        from nydus_top.commands.consensus import load_run

        warnings: list[str] = []
        for path in paths:
            one = load_run(path, table.paths, warnings)
            assert one is not None, warnings
            table.add_columns(str(path), one.columns, one.ranges)
    else:
        for n, run in enumerate(loaded):
            table.add(f"run{n}", run)
        del loaded
    if name in ("list", "files"):
        summary = ev.mean(ev.score_list(table, listed, None, link))
    elif name == "loo":
        summary = ev.mean(ev.leave_one_out(table, link, 0.5))
    else:
        points = ev.sweep(table, link)
        summary = next(p.mean for p in points if p.share == ev.auto_share(points))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.3f} {peak_mb:.1f} {base_rss / 1024:.1f} {summary.file_hit_rate:.4f} "
          f"{summary.predicted_stall_s:.3f} {cpu:.3f}")


def main() -> None:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--runs", type=int, default=100, help="runs (default 100)")
    ap.add_argument("--files", type=int, default=10_000, help="files a run and entries in the list (default 10000)")
    ap.add_argument("--auto", action="store_true", help="also time the sweep of --min-share auto (no target)")
    args = ap.parse_args()
    count, files = (5, 200) if args.quick else (args.runs, args.files)
    print(f"evaluate a {files}-entry list against {count} runs of {files} files "
          f"(targets: {TARGET_S:.0f} s, {TARGET_MB:.0f} MB)")
    print(f"{'phase':<6} {'seconds':>8} {'x target':>8} {'peak MB':>8} {'x target':>8} {'(input MB)':>10} "
          f"{'hit':>7} {'stall s':>8} {'cpu s':>6}")
    for name in ("list", "files", "loo", *(("auto",) if args.auto or args.quick else ())):
        out = subprocess.run([sys.executable, __file__, "--phase", name, str(count), str(files)],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds, peak, base = float(out[0]), float(out[1]), float(out[2])
        ratio_s = "-" if name == "auto" else f"{seconds / TARGET_S:.2f}"
        ratio_mb = "-" if name == "auto" else f"{peak / TARGET_MB:.2f}"
        print(f"{name:<6} {seconds:8.3f} {ratio_s:>8} {peak:8.1f} {ratio_mb:>8} {base:10.1f} {out[3]:>7} {out[4]:>8} "
              f"{float(out[5]):6.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
