"""Peak memory of `nydus-top record` and `nydus-top ps` under a runtime peer that floods them with
Synchronize chunks (``more = true`` forever), before and after the MAX_SYNC_BYTES limit.

The peer registers the plugin, answers nothing itself and sends Synchronize chunks as large as
containerd sends them (4 MiB), reading each answer, until the plugin drops the connection or
``--flood-mib`` went out. ``record`` then gets SIGTERM; ``ps`` ends by itself. The peak RSS is the
child's ``ru_maxrss`` from wait4. "before" runs the package of ``--before`` (default: the commit
before the limit) from a ``git archive`` of it, with this tree's generated modules; "after" runs
this tree. Needs root (``record`` starts its tracer pool).
Run: .venv/bin/python bench/peer_flood.py [--flood-mib 256] [--before REV] [--quick]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import benchkit

from nydus_top.nri import ttrpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from testkit.hostile_peer import answer, send_request_body, sync_request
from testkit.runtime_peer import RuntimePeer

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("_native.abi3.so", "nri/nri_api_pb2.py", "nri/nri_ttrpc_pb2.py")
CHUNK = ttrpc.MAX_MESSAGE


def default_before() -> str:
    first = subprocess.run(["git", "log", "--format=%H", "-S", "MAX_SYNC_BYTES", "--", "nydus_top/nri/session.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return f"{first[-1]}^" if first else "HEAD"


def package_of(rev: str, dest: Path) -> Path:
    """The nydus_top package of ``rev`` under ``dest``, with this tree's build products."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "nydus_top"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for name in GENERATED:
        shutil.copy2(ROOT / "nydus_top" / name, dest / "nydus_top" / name)
    return dest


def command(tree: Path, args: list[str]) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from nydus_top.cli import main; "
            "raise SystemExit(main())")
    return [sys.executable, "-c", code, *args]


async def flood(tree: Path, tool: str, work: Path, limit: int) -> tuple[int, int]:
    """Run ``tool`` from ``tree`` against the flooding peer; return (bytes it accepted, peak RSS)."""
    sock = work / f"{tool}.sock"
    args = {"record": ["record", "--nri-socket", str(sock), "--persist-dir", str(work / "out"), "--log",
                       str(work / f"{tool}.log")],
            "ps": ["ps", "--nri-socket", str(sock), "--timeout", "600"]}[tool]
    body = sync_request(CHUNK)
    async with RuntimePeer(sock) as peer:
        proc = subprocess.Popen(command(tree, args), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = await peer.accept(30)
        await conn.accept_registration()
        await conn.call("Configure", b"")
        accepted = 0
        while accepted < limit:
            stream = send_request_body(conn, body)
            try:
                await answer(conn, stream, 60)
            except EOFError:
                break
            accepted += len(body)
        conn.close()
        await peer.close()  # no reconnection
        if tool == "record":
            proc.send_signal(signal.SIGTERM)
        _, _, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
    return accepted, usage.ru_maxrss * 1024


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--flood-mib", type=int, default=256, help="stop flooding after this much (default 256)")
    parser.add_argument("--before", default=None, help="git revision of the 'before' run")
    args = parser.parse_args()
    before = args.before or default_before()
    limit = (16 if args.quick else args.flood_mib) << 20
    with tempfile.TemporaryDirectory(prefix="peer-flood-") as tmp:
        work = Path(tmp)
        trees = {"after": ROOT} if args.quick else {"before": package_of(before, work / "before"), "after": ROOT}
        print(f"runtime peer flooding Synchronize chunks of {CHUNK >> 20} MiB (more = true) up to {args.flood_mib} MiB;"
              f" before = {before}")
        print(f"{'command':8} {'version':7} {'accepted MiB':>12} {'peak RSS MiB':>12}")
        for tool in ("record", "ps"):
            peaks = {}
            for version, tree in trees.items():
                accepted, peak = asyncio.run(flood(tree, tool, work, limit))
                peaks[version] = peak
                print(f"{tool:8} {version:7} {accepted / (1 << 20):12.0f} {peak / (1 << 20):12.1f}")
            if "before" in peaks:
                print(f"{tool:8} after/before peak RSS = {peaks['after'] / peaks['before']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
