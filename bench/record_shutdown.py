#!/usr/bin/env python3
"""How long `nydus-top record` takes to exit after SIGTERM while its registry push fails.

    sudo .venv/bin/python -m bench.record_shutdown [--rounds 3] [--before REV] [--dir DIR]

A sandbox node runs the start-up workload (imported as 127.0.0.1:PORT/bench/startup-workload:1)
with `record` pushing (`[registry] push = true`) to a registry on 127.0.0.1:PORT that answers
every request with 500. Each round: a container that stays up is being recorded, SIGTERM, time to
exit; then the log lines naming the push failure and the registry's requests are counted.
"before" runs the package of --before (default: the commit before the shutdown change of the
pusher) from a `git archive`, "after" this tree, side by side. Target: 2 s (README; issue 18 item
18 measured 3.16 s and the failure logged twice).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import benchkit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

from peer_flood import command, package_of  # noqa: E402

from sandbox.node import SandboxNode  # noqa: E402
from testkit import harness, workload  # noqa: E402
from testkit.failing_registry import FailingRegistry  # noqa: E402

TARGET = 2.0
VERBOSE = False


def default_before() -> str:
    first = subprocess.run(["git", "log", "--format=%H", "-S", "PUSH_LEFT_BEHIND_SECONDS", "--",
                            "nydus_top/commands/record.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return f"{first[-1]}^" if first else "HEAD"


def one_round(node: SandboxNode, tree: Path, work: Path, pod: str, image: str, host: str, tag: str,
              server: FailingRegistry) -> tuple[float, int, int]:
    """(seconds from SIGTERM to exit, log lines naming the failure, registry requests)."""
    config = work / f"{tag}.toml"
    config.write_text(f'[registry]\npush = true\nplain_http = ["{host}"]\n')
    persist = work / tag
    logfile = work / f"{tag}.log"
    args = ["record", "--nri-socket", str(node.nri_socket), "--persist-dir", str(persist), "--config", str(config),
            "--image", image, "--log", str(logfile)]
    proc = subprocess.Popen(command(tree, args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    rec = harness.PluginProcess(proc, harness.LineLog(proc.stderr))  # nothing: the log goes to the file
    cid = ""
    try:
        harness.wait_in_file(logfile, "recording container starts", timeout=60)
        cid = node.cri.create_container(pod, tag, image, command=workload.command("stay"))
        node.cri.start_container(cid)
        node.wait_for_log(cid, workload.DONE_LINE)
        harness.wait_in_file(logfile, f"recording bench/record-bench/{tag} ", timeout=30)
        requests = server.requests
        t0, wall = time.monotonic(), time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        took = time.monotonic() - t0
    finally:
        rec.stop()
        if cid:
            node.cri.stop_container(cid)
            node.cri.remove_container(cid)
    lines = logfile.read_text().splitlines()
    if VERBOSE:
        for line in lines:
            stamp, _, text = line.partition(" nydus-top record: ")
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall
            if at > -1:
                print(f"  {tag} {at:+6.2f} s  {text}")
        print(f"  {tag} {took:+6.2f} s  (exited)")
    failures = sum(image in line and ("cannot push" in line or "failed in all" in line) for line in lines)
    return took, failures, server.requests - requests


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=default_before())
    parser.add_argument("--dir", help="sandbox node directory (default: a new temporary one: a node kept from an "
                        "earlier run holds the workload under other registry ports, and CRI may then name the "
                        "container's image by another of its references than --image)")
    parser.add_argument("--verbose", action="store_true", help="print each round's log lines after SIGTERM")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    global VERBOSE
    VERBOSE = args.verbose
    work = Path(tempfile.mkdtemp(prefix="nydus-top-bench-shutdown-"))
    node = SandboxNode(Path(args.dir) if args.dir else work / "node")
    server = FailingRegistry()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    results: dict[str, list[tuple[float, int, int]]] = {}
    node.up()
    try:
        image = harness.load_workload(node, work / "build", ref=f"{host}/bench/startup-workload:1")
        pod = node.cri.run_pod("record-bench", namespace="bench")
        try:
            trees = {"after": ROOT}
            if not args.quick:
                trees = {"before": package_of(args.before, work / "before"), **trees}
            for i in range(args.rounds):
                for name, tree in trees.items():
                    results.setdefault(name, []).append(
                        one_round(node, tree, work, pod, image, host, f"{name}{i}", server))
        finally:
            node.cri.remove_pod(pod)
    finally:
        node.down(purge=not args.dir)
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"record exit after SIGTERM, push failing (500), one recording in progress; target {TARGET} s")
    print(f"{'':<8} {'seconds':>28}  {'max/target':>10}  failure lines  registry requests after SIGTERM")
    for name, rounds in results.items():
        times = " ".join(f"{t:.2f}" for t, _, _ in rounds)
        worst = max(t for t, _, _ in rounds)
        print(f"{name:<8} {times:>28}  {worst / TARGET:>10.2f}  {' '.join(str(f) for _, f, _ in rounds):>13}"
              f"  {' '.join(str(r) for _, _, r in rounds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
