#!/usr/bin/env python3
"""Start-up capture, side by side on one sandbox node: nydus-top record vs Debian's optimizer plugin.

    sudo .venv/bin/python bench/startup_capture.py [--starts 20] [--interval-us 1000] [--dir DIR]

The same workload (tests/record/workload.c: a libc-free static binary that reads 44 files from
its first instruction, one every INTERVAL_US) is started STARTS times under each of:

* ``nydus-top record``: arms its tracer during StartContainer and answers only once the mark is
  in place;
* ``optimizer-nri-plugin`` (Debian's nydus-snapshotter) with nydus-top's optimizer-compatible
  tracer executable as its ``server_path``: it starts the server and answers at once;
* no plugin, for the StartContainer latency baseline.

For each it prints how many starts were captured completely (the entry point's exec first, then
every file in order), how many files were captured, the first file's elapsed time and the
StartContainer latency (CRI call, median and p95).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from sandbox.node import SandboxNode  # noqa: E402

from tests.record import harness, workload  # noqa: E402

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


@dataclass
class Side:
    name: str
    start_ms: list[float] = field(default_factory=list)
    captured: list[int] = field(default_factory=list)  # files in the list, per start
    complete: int = 0  # starts whose list is exactly EXPECTED
    first_elapsed_us: list[int] = field(default_factory=list)
    note: str = ""

    def row(self, starts: int) -> str:
        def pct(values: list[float], q: float) -> float:
            return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

        lat = f"{statistics.median(self.start_ms):7.1f} {pct(self.start_ms, 0.95):7.1f}"
        if not self.captured:
            return f"{self.name:<34} {'-':>9} {'-':>13} {'-':>13} {lat}"
        files = f"{min(self.captured):>3}/{statistics.median(self.captured):>4.0f}/{max(self.captured):>3}"
        first = f"{statistics.median(self.first_elapsed_us) / 1000:.1f}" if self.first_elapsed_us else "-"
        return f"{self.name:<34} {self.complete:>4}/{starts:<4} {files:>13} {first:>13} {lat}"


def _start(cri, pod: str, name: str, image: str, interval_us: int) -> tuple[str, float]:
    cid = cri.create_container(pod, name, image, command=workload.command("exit", interval_us=interval_us))
    t0 = time.monotonic()
    cri.start_container(cid)
    return cid, (time.monotonic() - t0) * 1000


def _score(side: Side, persist: Path) -> None:
    lines = (persist / RESULT).read_text().splitlines()
    rows = (persist / f"{RESULT}.csv").read_text().splitlines()[1:]
    side.captured.append(len([p for p in lines if p in EXPECTED]))
    side.complete += lines == EXPECTED
    if rows:
        side.first_elapsed_us.append(int(rows[0].rsplit(",", 1)[1]))
    (persist / RESULT).unlink()
    (persist / f"{RESULT}.csv").unlink()


def run(node: SandboxNode, image: str, starts: int, interval_us: int, work: Path) -> list[Side]:
    cri = node.cri
    pod = cri.run_pod("bench-startup", namespace="bench")
    sides = []
    try:
        # nydus-top record
        side, persist, arm_ms = Side("nydus-top record"), work / "nydus-top", []
        rec = harness.start_recorder(node.nri_socket, persist, args=["--image", image])
        try:
            for i in range(starts):
                cid, ms = _start(cri, pod, f"ours-{i}", image, interval_us)
                side.start_ms.append(ms)
                harness.wait_exited(cri, cid)
                harness.wait_file(persist / f"{RESULT}.csv")  # renamed into place after the list
                line = rec.log.lines[rec.log.wait_for(f"({cid[:12]}) into", 1)]
                arm_ms.append(float(line.rsplit("mark placed in ", 1)[1].split(" ms")[0]))
                _score(side, persist)
                cri.remove_container(cid)
        finally:
            rec.stop()
        side.note = (f"mark placed {statistics.median(arm_ms):.1f} ms (median), "
                     f"{sorted(arm_ms)[int(0.95 * len(arm_ms))]:.1f} ms (p95) after StartContainer reached nydus-top")
        sides.append(side)

        # optimizer-nri-plugin + nydus-top-tracer as server_path
        side, persist = Side("optimizer-nri-plugin + our tracer"), work / "optimizer"
        opt = harness.start_optimizer(node.optimizer_plugin, node.nri_socket, persist)
        try:
            for i in range(starts):
                mark = len(opt.log.lines)
                cid, ms = _start(cri, pod, f"optimizer-{i}", image, interval_us)
                side.start_ms.append(ms)
                harness.wait_exited(cri, cid)
                # The server ends with the container; the plugin then closes the result files.
                opt.log.wait_for("Get EOF from fanotify server", 10, start=mark)
                _score(side, persist)
                cri.remove_container(cid)
        finally:
            opt.stop()
        sides.append(side)

        side = Side("no plugin (baseline)")
        for i in range(starts):
            cid, ms = _start(cri, pod, f"bare-{i}", image, interval_us)
            side.start_ms.append(ms)
            harness.wait_exited(cri, cid)
            cri.remove_container(cid)
        sides.append(side)
    finally:
        cri.remove_pod(pod)
    return sides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--interval-us", type=int, default=workload.INTERVAL_US)
    parser.add_argument("--dir", default="/var/lib/nydus-top/bench-startup", help="sandbox node directory")
    args = parser.parse_args()
    node = SandboxNode(args.dir)
    work = Path(args.dir) / "bench-work"
    shutil.rmtree(work, ignore_errors=True)
    node.up()
    try:
        image = harness.load_workload(node, work / "build")
        sides = run(node, image, args.starts, args.interval_us, work)
    finally:
        node.down()
    print(f"start-up capture: {args.starts} starts each, {len(EXPECTED)} files "
          f"(exec + {len(workload.STARTUP_FILES)} reads, one every {args.interval_us} us)")
    print(f"{'':<34} {'complete':>9} {'files min/med/max':>13} {'1st file ms':>13} {'StartContainer ms med p95'}")
    for side in sides:
        print(side.row(args.starts))
    for side in sides:
        if side.note:
            print(f"{side.name}: {side.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
