"""Cost of the list files' safety measures, measured side by side in one run.

* save: validated, atomic optimizer-compatible save (temp files, fsync, rename) of N entries
  vs. formatting the same lines naively and writing them in place without fsync;
* load: ``load_list`` of that list with its csv (parsed, checked, deduplicated) vs. reading
  the csv rows with the csv module;
* overlay: ``OverlayRoot.origin`` (no-symlink lookups in every layer) for N paths vs. one
  ``os.path.lexists`` per path and layer.

Usage: ``.venv/bin/python bench/lists_bench.py [--entries 100000] [--quick]``. Prints seconds and ratios.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import benchkit

from nydus_top.lists.files import load_list, save_list
from nydus_top.model.records import Access
from nydus_top.tracing.overlay import OverlayRoot


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="nydus-top-bench-"))
    paths = [f"/usr/lib/pkg{i % 200}/sub{i % 7}/file{i}.so" for i in range(n)]
    trace = [Access(i, p, 4096 + i, i * 3, "open", 1, "app") for i, p in enumerate(paths)]

    def naive_save() -> None:
        (work / "naive").write_text("".join(f"{a.path}\n" for a in trace))
        (work / "naive.csv").write_text("path,size,elapsed\n" + "".join(
            f"{a.path},{a.size},{a.elapsed_us}\n" for a in trace))

    def naive_load() -> None:
        with open(work / "naive.csv", newline="") as f:
            list(csv.reader(f))

    rows = [("save", timed(lambda: save_list(trace, work / "list", overwrite=True)), timed(naive_save))]
    rows.append(("load", timed(lambda: load_list(work / "list")),
                 timed(naive_load)))

    layers = [work / name for name in ("upper", "lower1", "lower2")]
    for i, p in enumerate(paths):  # a third of the files in each layer
        target = layers[i % 3] / p.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    root = OverlayRoot(str(layers[0]), (str(layers[1]), str(layers[2])))

    def naive_origin() -> None:
        for p in paths:
            for layer in layers:
                os.path.lexists(os.path.join(layer, p.lstrip("/")))

    rows.append(("overlay origin", timed(lambda: root.upper_only(paths)), timed(naive_origin)))

    shutil.rmtree(work)
    print(f"{n} entries")
    print(f"{'operation':<16}{'nydus-top s':>12}{'naive s':>10}{'ratio':>8}")
    for name, ours, naive in rows:
        print(f"{name:<16}{ours:>12.3f}{naive:>10.3f}{ours / naive:>8.1f}")


if __name__ == "__main__":
    ap = benchkit.parser(__doc__)
    ap.add_argument("--entries", type=int, default=100_000, help="entries in the list (default 100000)")
    args = ap.parse_args()
    main(2_000 if args.quick else args.entries)
