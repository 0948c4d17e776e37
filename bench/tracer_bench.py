#!/usr/bin/env python3
"""Tracer benchmark: nydus-top's tracer vs fatrace vs a minimal C floor, side by side in one run.

Usage (root): .venv/bin/python bench/tracer_bench.py [--sizes 1000,10000,100000] [--reps 3]

For each filesystem (tmpfs, loop ext4) and N, a C workload reads N small files once each, untraced
and under each tracer (all marking the same mount with FAN_MARK_MOUNT). Reported: completeness,
workload slowdown vs untraced, drain time after the workload ends, tracer CPU per event (file),
peak RSS and overflows; then the arming latency of TracerPool.start -> ready. Runs in a private
mount namespace; installs fatrace with apt-get if missing.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import benchkit

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TRACERS = ("floor", "nydus-top", "fatrace")


@dataclass
class Run:
    complete: float
    slowdown: float
    drain_ms: float | None
    cpu_us: float
    rss_mib: float
    overflows: int


def cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def build(tmp: Path) -> dict[str, Path]:
    out = {}
    for name in ("tracer_floor", "tracer_workload"):
        out[name] = tmp / name
        subprocess.run(["gcc", "-O2", "-o", str(out[name]), str(HERE / f"{name}.c")], check=True)
    return out


def workload(progs: dict[str, Path], d: Path, n: int) -> float:
    r = subprocess.run([str(progs["tracer_workload"]), "read", str(d), str(n)], check=True,
                       capture_output=True, text=True)
    return int(r.stdout) / 1e9


def tail_has(path: Path, token: bytes) -> bool:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, 2) - 8192))
        return token in f.read()


def traced_run(kind: str, progs: dict[str, Path], mnt: Path, d: Path, n: int, base: float,
               shm: Path) -> Run:
    out = shm / f"{kind}.out"
    err = shm / f"{kind}.err"
    ready_r, ready_w = os.pipe()
    with out.open("wb") as fo, err.open("wb") as fe:
        if kind == "nydus-top":
            env = {"_MNTNS_PID": str(os.getpid()), "_TARGET": str(mnt), "NYDUS_TOP_READY_FD": str(ready_w)}
            proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], env=env, stdout=fo, stderr=fe,
                                    pass_fds=(ready_w,))
            token = f'/{n - 1}"'.encode()
        elif kind == "floor":
            proc = subprocess.Popen([str(progs["tracer_floor"]), str(mnt), str(ready_w)], stdout=fo,
                                    stderr=fe, pass_fds=(ready_w,))
            token = f"/{n - 1}\n".encode()
        else:
            out.unlink()  # fatrace refuses an existing output file
            proc = subprocess.Popen(["fatrace", "-c", "-f", "OR", "-o", str(out)], cwd=mnt, stdout=fe, stderr=fe)
            token = f"/{n - 1}\n".encode()
    os.close(ready_w)
    if kind == "fatrace":  # no ready signal: touch a sentinel until it shows up
        sentinel = mnt / "sentinel"
        sentinel.write_bytes(b"s")
        while not (out.exists() and tail_has(out, b"sentinel")):
            if proc.poll() is not None:
                raise SystemExit(f"fatrace failed: {err.read_text(errors='replace').strip()}")
            sentinel.read_bytes()
            time.sleep(0.01)
    else:
        assert os.read(ready_r, 5)[:1] == b"R", f"{kind} not ready"
    os.close(ready_r)
    cpu0 = cpu_ns(proc.pid)
    wall = workload(progs, d, n)
    end = time.monotonic()
    drain = None
    while time.monotonic() - end < 10:
        if tail_has(out, token):
            drain = (time.monotonic() - end) * 1000
            break
        time.sleep(0.001)
    cpu1 = cpu_ns(proc.pid)
    rss_kib = peak_rss_kib(proc.pid)
    proc.send_signal(signal.SIGTERM if kind != "fatrace" else signal.SIGINT)
    proc.wait()
    prefix = f"{d}/".encode()
    seen = set()
    data = out.read_bytes()
    for line in data.split(b"\n"):
        i = line.find(prefix)
        if i >= 0:
            name = line[i + len(prefix):].split(b'"')[0].split(b" ")[0]
            seen.add(name)
    if kind == "nydus-top":
        overflows = data.count(b'"kind":"overflow"')
    else:
        text = err.read_text(errors="replace")
        if "overflows=" in text:
            overflows = int(text.split("overflows=")[1].split()[0])
        else:
            overflows = text.lower().count("overflow")
    expected = {str(i).encode() for i in range(n)}
    return Run(complete=len(seen & expected) / n, slowdown=wall / base, drain_ms=drain,
               cpu_us=(cpu1 - cpu0) / 1000 / n, rss_mib=rss_kib / 1024, overflows=overflows)


def median_run(runs: list[Run]) -> Run:
    drains = [r.drain_ms for r in runs if r.drain_ms is not None]
    return Run(complete=min(r.complete for r in runs),
               slowdown=statistics.median(r.slowdown for r in runs),
               drain_ms=statistics.median(drains) if len(drains) == len(runs) else None,
               cpu_us=statistics.median(r.cpu_us for r in runs),
               rss_mib=max(r.rss_mib for r in runs), overflows=max(r.overflows for r in runs))


def mount_fs(kind: str, tmp: Path) -> Path:
    mnt = tmp / f"mnt-{kind}"
    mnt.mkdir()
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,nr_inodes=0", "tmpfs", str(mnt)], check=True)
    else:
        img = tmp / "ext4.img"
        with img.open("wb") as f:
            f.truncate(2 << 30)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-N", "400000", str(img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    return mnt


def arming_latency(count: int = 50) -> tuple[float, float, float]:
    from nydus_top.tracing.tracer import TracerPool

    times = []
    with TracerPool() as pool:
        pool.warm_up()
        for _ in range(count):
            t0 = time.perf_counter()
            trace = pool.start(os.getpid())
            trace.wait_ready(5)
            times.append((time.perf_counter() - t0) * 1000)
            trace.stop()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95) - 1], times[-1]


def bench_fs(fs: str, mnt: Path, sizes: list[int], reps: int, progs: dict[str, Path], shm: Path) -> None:
    for n in sizes:
        d = mnt / f"n{n}"
        subprocess.run([str(progs["tracer_workload"]), "make", str(d), str(n)], check=True,
                       stdout=subprocess.DEVNULL)
        workload(progs, d, n)  # warm the caches
        runs: dict[str, list[Run]] = {k: [] for k in TRACERS}
        for _ in range(reps):
            for kind in TRACERS:
                base = workload(progs, d, n)
                runs[kind].append(traced_run(kind, progs, mnt, d, n, base, shm))
        floor = median_run(runs["floor"])
        for kind in TRACERS:
            r = median_run(runs[kind])
            drain = f"{r.drain_ms:9.1f}" if r.drain_ms is not None else f"{'incompl.':>9}"
            print(f"{fs:6} {n:>7} {kind:10} {r.complete:9.2%} {r.slowdown:8.2f}x "
                  f"{r.slowdown / floor.slowdown:8.2f}x {drain} {r.cpu_us:9.2f} {r.rss_mib:8.1f} "
                  f"{r.overflows:8d}", flush=True)


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fs", default="tmpfs,ext4")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.reps, args.fs = "200", 1, "tmpfs"
    if os.environ.get("_TRACER_BENCH_NS") != "1":  # re-run in a private mount namespace
        os.environ["_TRACER_BENCH_NS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv])
    if shutil.which("fatrace") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "fatrace"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir="/var/tmp") as t, tempfile.TemporaryDirectory(dir="/dev/shm") as s:
        tmp, shm = Path(t), Path(s)
        progs = build(tmp)
        print(f"# {os.cpu_count()} CPUs, kernel {os.uname().release}, reps={args.reps} (median; completeness min)")
        print(f"{'fs':6} {'N':>7} {'tracer':10} {'complete':>9} {'slowdown':>9} {'vs floor':>9} "
              f"{'drain ms':>9} {'cpu us/ev':>9} {'rss MiB':>8} {'overflow':>8}")
        for fs in args.fs.split(","):
            mnt = mount_fs(fs, tmp)
            try:
                bench_fs(fs, mnt, sizes, args.reps, progs, shm)
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
        p50, p95, worst = arming_latency()
        print(f"# arming latency TracerPool.start -> ready (50 runs): p50 {p50:.2f} ms, p95 {p95:.2f} ms, "
              f"max {worst:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
