#!/usr/bin/env python3
"""Two containers of one image starting at once: nydus-top record vs Debian's optimizer plugin.

    sudo .venv/bin/python bench/startup_collision.py [--rounds 5] [--dir DIR]

Each round starts two containers of the start-up workload (tests/record/workload.c, one file
every 20 ms so that the optimizer's per-container server catches most of them), waits until both
have read their files, stops the first, then the second, and checks the one result file both
recorders write for the image: is every line a file of the workload, each once, in the
workload's order, and how many of the 45 are there? Both plugins get ``--overwrite``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import benchkit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts")]

from sandbox.node import SandboxNode  # noqa: E402
from testkit import harness, workload  # noqa: E402

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


def verdict(listing: bytes) -> tuple[bool, int]:
    """(well formed: known paths, each once, in workload order; number of lines)."""
    lines = listing.decode("utf-8", "replace").splitlines()
    order = {path: i for i, path in enumerate(EXPECTED)}
    known = [order.get(line) for line in lines]
    ok = None not in known and known == sorted(set(known))  # type: ignore[type-var]
    return ok, len(lines)


def round_trip(node: SandboxNode, pod: str, image: str, tag: str, plugin: harness.PluginProcess,
               persist: Path, ours: bool) -> tuple[bool, int]:
    cri = node.cri
    start = len(plugin.log.lines)
    a = cri.create_container(pod, f"{tag}-a", image, command=workload.command("stay", interval_us=20000))
    b = cri.create_container(pod, f"{tag}-b", image, command=workload.command("stay", interval_us=20000))
    cri.start_container(a)
    cri.start_container(b)
    for cid in (a, b):
        node.wait_for_log(cid, workload.DONE_LINE)
    for cid in (a, b):
        mark = len(plugin.log.lines)
        cri.stop_container(cid)
        if ours:
            plugin.log.wait_for(f"({cid[:12]})", 10, start=mark)  # saved (or why not)
    if not ours:  # each of its two receivers ends when its server does
        first = plugin.log.wait_for("Get EOF from fanotify server", 10, start=start)
        plugin.log.wait_for("Get EOF from fanotify server", 10, start=first + 1)
    for cid in (a, b):
        cri.remove_container(cid)
    result = verdict((persist / RESULT).read_bytes())
    (persist / RESULT).unlink()
    (persist / f"{RESULT}.csv").unlink()
    return result


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default="/var/lib/nydus-top/bench-startup", help="sandbox node directory")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    node = SandboxNode(args.dir)
    work = Path(args.dir) / "bench-work"
    shutil.rmtree(work, ignore_errors=True)
    node.up()
    results: dict[str, list[tuple[bool, int]]] = {}
    try:
        image = harness.load_workload(node, work / "build")
        pod = node.cri.run_pod("bench-collision", namespace="bench")
        try:
            persist = work / "nydus-top"
            rec = harness.start_recorder(node.nri_socket, persist, args=["--overwrite", "--image", image])
            try:
                results["nydus-top record"] = [round_trip(node, pod, image, f"ours{i}", rec, persist, True)
                                               for i in range(args.rounds)]
            finally:
                rec.stop()
            persist = work / "optimizer"
            opt = harness.start_optimizer(node.optimizer_plugin, node.nri_socket, persist, flags=["--overwrite"])
            try:
                results["optimizer-nri-plugin + our tracer"] = [
                    round_trip(node, pod, image, f"opt{i}", opt, persist, False) for i in range(args.rounds)]
            finally:
                opt.stop()
        finally:
            node.cri.remove_pod(pod)
    finally:
        node.down()
    print(f"two containers of one image at once, {args.rounds} rounds, {len(EXPECTED)} files each")
    print(f"{'':<34} {'well-formed':>11}  lines per round")
    for name, rounds in results.items():
        good = sum(ok for ok, _ in rounds)
        print(f"{name:<34} {good:>5}/{len(rounds):<5}  {' '.join(str(n) for _, n in rounds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
