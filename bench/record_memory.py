"""Memory of a headless recording: compact columns vs. the Access objects the recorder kept before.

Each representation runs in a fresh child process (so one cannot reuse the other's freed
memory). The child parses real tracer JSON lines (``tracer.parse_line``, as the trace reader
does) in batches of 500 and hands them to:

* ``objects``: the old recorder: every batch appended to a list of Access objects
  (``LiveTrace.records``), which the recording kept until its save;
* ``compact``: the recorder now: ``Recording.ingest`` into a ``CompactList``; each batch's
  objects are dropped once ingested.

It reports the resident memory added after the last batch (``/proc/self/statm``, after a full
collection), per file and per 100k files, minus the paths' own bytes, and the peak added while
the recording is saved (``save_list`` of what it holds; ``ru_maxrss``).

Usage: ``.venv/bin/python bench/record_memory.py [--files 100000,1000000] [--quick]``.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import benchkit

BATCH = 500
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def _line(i: int) -> bytes:
    path = f"/usr/lib/python3/dist-packages/pkg{i % 500}/sub{i % 13}/module_{i}.py"
    return (f'{{"path":"{path}","size":{4096 + i % 100000},"elapsed":{i * 7},"kind":"open",'
            f'"pid":{1000 + i % 50},"comm":"python3","seq":{i}}}').encode()


def _path_bytes(n: int) -> int:
    return sum(len(json.loads(_line(i))["path"].encode()) for i in range(n))


def child(kind: str, n: int) -> None:
    from nydus_top.lists.compact import CompactList
    from nydus_top.lists.files import save_list
    from nydus_top.lists.meta import ListMeta
    from nydus_top.recording.recorder import Recording
    from nydus_top.tracing.tracer import parse_line

    gc.collect()
    base = _rss()
    held: list = []
    rec = Recording(None, "", "bench", None, CompactList(1 << 40), print, ListMeta())  # type: ignore[arg-type]
    for start in range(0, n, BATCH):
        batch = [parse_line(_line(i)) for i in range(start, min(start + BATCH, n))]
        if kind == "objects":
            held.extend(batch)
        else:
            rec.ingest(batch)
        del batch
    gc.collect()
    steady = _rss() - base
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with tempfile.TemporaryDirectory(prefix="nydus-top-bench-") as work:
        save_list(held if kind == "objects" else rec.files, Path(work) / "app:1")
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, peak_before) - base
    print(json.dumps({"steady": steady, "peak": peak}))


def measure(kind: str, n: int) -> dict[str, int]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.splitlines()[-1])


def main(sizes: list[int]) -> None:
    print(f"{'files':>9} {'store':>8} {'MB held':>9} {'B/file':>7} {'B/file-path':>12} {'per 100k':>9} "
          f"{'MB peak on save':>16} {'ratio':>6}")
    for n in sizes:
        path_bytes = _path_bytes(n)
        results = {kind: measure(kind, n) for kind in ("objects", "compact")}
        for kind, r in results.items():
            ratio = r["steady"] / results["objects"]["steady"]
            print(f"{n:>9} {kind:>8} {r['steady'] / 1e6:>9.1f} {r['steady'] / n:>7.0f} "
                  f"{(r['steady'] - path_bytes) / n:>12.0f} {r['steady'] / n * 1e5 / 1e6:>7.1f}MB "
                  f"{r['peak'] / 1e6:>16.1f} {ratio:>6.2f}")
        print(f"{'':>9} paths: {path_bytes / n:.0f} bytes a file on average")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        ap = benchkit.parser(__doc__)
        ap.add_argument("--files", default="100000,1000000", help="recording sizes, comma-separated")
        args = ap.parse_args()
        main([2_000] if args.quick else [int(a) for a in args.files.split(",")])
