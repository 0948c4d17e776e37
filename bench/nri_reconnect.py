"""Reconnection latency: how soon after containerd's NRI socket is connectable again nydus-top is back.

A fake runtime serves `nydus-top ps --watch` (the same session as `record` and the app), then
goes away for an outage (socket closed and removed), listens again and times the first accepted
connection from the moment it listens. "before" runs the package of ``--before`` (default: the
commit before CONNECT_RETRY) from a ``git archive`` of it, "after" this tree, side by side.
Target: 0.5 s (issue 9, item 14: measured 3.1 s on containerd 2.1 after a second restart).
Run: .venv/bin/python bench/nri_reconnect.py [--outages 0.5,1.5,3.2,6.4] [--before REV] [--quick]
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import benchkit
from peer_flood import ROOT, command, package_of

from testkit.runtime_peer import RuntimePeer, pod_msg

TARGET = 0.5


def default_before() -> str:
    first = subprocess.run(["git", "log", "--format=%H", "-S", "CONNECT_RETRY", "--", "nydus_top/nri/session.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return f"{first[-1]}^" if first else "HEAD"


async def latencies(tree: Path, work: Path, outages: list[float]) -> list[float]:
    sock = work / "nri.sock"
    peer = RuntimePeer(sock)
    await peer.__aenter__()
    proc = subprocess.Popen(command(tree, ["ps", "--watch", "--nri-socket", str(sock)]), cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    try:
        conn = await peer.accept(30)
        await conn.handshake(pods=[pod_msg(1)])
        for outage in outages:
            await peer.close()  # containerd goes down: no socket
            conn.close()
            await asyncio.sleep(outage)
            await peer.__aenter__()  # ... and is back: connectable from now
            t0 = time.monotonic()
            conn = await peer.accept(60)
            out.append(time.monotonic() - t0)
            await conn.handshake(pods=[pod_msg(1)])
    finally:
        proc.terminate()
        proc.wait()
        await peer.close()
    return out


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--outages", default="0.5,1.5,3.2,6.4", help="seconds containerd stays away, comma-separated")
    parser.add_argument("--before", default=None, help="git revision of the 'before' run")
    args = parser.parse_args()
    outages = [0.3] if args.quick else [float(x) for x in args.outages.split(",")]
    before = args.before or default_before()
    with tempfile.TemporaryDirectory(prefix="nri-reconnect-") as tmp:
        work = Path(tmp)
        trees = {"after": ROOT} if args.quick else {"before": package_of(before, work / "before"), "after": ROOT}
        print(f"reconnection after the NRI socket is connectable again (target {TARGET} s); before = {before}")
        print(f"{'version':7} " + " ".join(f"{f'outage {o:g} s':>12}" for o in outages) + f" {'worst/target':>13}")
        for version, tree in trees.items():
            run_dir = work / f"run-{version}"
            run_dir.mkdir()
            got = asyncio.run(latencies(tree, run_dir, outages))
            print(f"{version:7} " + " ".join(f"{g:12.3f}" for g in got) + f" {max(got) / TARGET:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
