#!/usr/bin/env python3
"""Start-up capture, side by side on one sandbox node: nydus-top record vs Debian's optimizer plugin.

    sudo .venv/bin/python bench/startup_capture.py [--starts 20] [--interval-us 1000] [--dir DIR]
        [--arms 200] [--workloads static,python,perl]

Each workload is started STARTS times under each of:

* ``nydus-top record``: arms its tracer during StartContainer and answers only once the mark is
  in place;
* ``optimizer-nri-plugin`` (Debian's nydus-snapshotter) with nydus-top's native
  ``nydus-top-tracer`` as its ``server_path``: it starts the server and answers at once;
* the same plugin with a Python server: the retired ``nydus-top-tracer`` (interpreter start, import
  of the tracer module, then ``trace_session.run``), written into the work directory;
* no plugin, for the StartContainer latency baseline.

Workloads: ``static`` is tests/record/workload.c, a libc-free static binary that reads 44 files
from its first instruction, one every INTERVAL_US ("complete" = its exec, then every file, in
order); ``python`` and ``perl`` are real interpreter start-ups in images made of this host's Debian
files (bench/interpreter_images.py; "complete" = every file the start opens on the host, in any
order; strace is installed with apt-get if missing).

For each it prints how many starts were captured completely, how many of the expected files each
list has, how many lists have the executable itself, the first file's elapsed time and the
StartContainer latency (CRI call, median and p95). Then, for both servers, the time from spawning
them and from their exec (posix_spawn's return) to their ready byte (mark in place), ARMS times each,
interleaved, marking the node directory's mount in the namespace of a sleeping process, next to
the floor: bench/ready_floor.c, a static program that writes its ready byte at once (what exec and
scheduling cost before any server can mark). The bench runs at nice -10 meanwhile so that its own
wake-up adds as little as it can.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchkit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

import interpreter_images  # noqa: E402

from sandbox.node import SandboxNode  # noqa: E402
from testkit import harness, workload  # noqa: E402

# The Python server nydus-top-tracer was until it became native (native/optimizer_server.c).
PYTHON_SERVER = """#!{python} -I
import os
from nydus_top.tracing import file_session as trace_session
ready = os.environ.get("NYDUS_TOP_READY_FD")
os._exit(trace_session.run(int(os.environ["_MNTNS_PID"]), out_fd=1, target=os.environ.get("_TARGET") or "/",
                           ready_fd=int(ready) if ready else None))
"""


def python_server(work: Path) -> Path:
    path = work / "python-server"
    path.write_text(PYTHON_SERVER.format(python=sys.executable))
    path.chmod(0o755)
    return path


def ready_floor(work: Path) -> Path:
    out = work / "ready_floor"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(ROOT / "bench" / "ready_floor.c")], check=True)
    return out


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


@dataclass(frozen=True)
class Workload:
    title: str
    image: str
    command: list[str]
    expected: list[str]  # the start-up list, the executable first
    ordered: bool  # complete = exactly `expected`; else every file of it, in any order

    @property
    def result(self) -> str:
        """The list's file name under persist_dir (both plugins: the image's last path element)."""
        return self.image.rsplit("/", 1)[1]

    def complete(self, lines: list[str]) -> bool:
        return lines == self.expected if self.ordered else set(self.expected) <= set(lines)


def static_workload(node: SandboxNode, work: Path, interval_us: int) -> Workload:
    image = harness.load_workload(node, work / "build")
    expected = [workload.ENTRYPOINT, *workload.STARTUP_FILES]
    return Workload(f"static workload: exec + {len(workload.STARTUP_FILES)} reads, one every {interval_us} us",
                    image, workload.command("exit", interval_us=interval_us), expected, ordered=True)


def interpreter_workload(node: SandboxNode, name: str) -> Workload:
    start = interpreter_images.STARTS[name]
    files, expected = interpreter_images.image_and_list(start)
    node.load_image(start.image, files, list(start.command))
    return Workload(f"{name} start-up: {' '.join(start.command)} ({len(expected)} files)",
                    start.image, list(start.command), expected, ordered=False)


@dataclass
class Side:
    name: str
    start_ms: list[float] = field(default_factory=list)
    captured: list[int] = field(default_factory=list)  # expected files in the list, per start
    complete: int = 0
    exec_seen: int = 0  # lists with the executable
    first_elapsed_us: list[int] = field(default_factory=list)
    note: str = ""

    def row(self, starts: int) -> str:
        lat = f"{statistics.median(self.start_ms):7.1f} {pct(self.start_ms, 0.95):7.1f}"
        if not self.captured:
            return f"{self.name:<38} {'-':>9} {'-':>13} {'-':>6} {'-':>11} {lat}"
        files = f"{min(self.captured):>3}/{statistics.median(self.captured):>4.0f}/{max(self.captured):>3}"
        first = f"{statistics.median(self.first_elapsed_us) / 1000:.1f}" if self.first_elapsed_us else "-"
        return (f"{self.name:<38} {self.complete:>4}/{starts:<4} {files:>13} {self.exec_seen:>3}/{starts:<2} "
                f"{first:>11} {lat}")


def _start(cri, pod: str, name: str, wl: Workload) -> tuple[str, float]:
    cid = cri.create_container(pod, name, wl.image, command=wl.command)
    t0 = time.monotonic()
    cri.start_container(cid)
    return cid, (time.monotonic() - t0) * 1000


def _score(side: Side, persist: Path, wl: Workload) -> None:
    lines = (persist / wl.result).read_text().splitlines()
    rows = (persist / f"{wl.result}.csv").read_text().splitlines()[1:]
    side.captured.append(len(set(wl.expected) & set(lines)))
    side.complete += wl.complete(lines)
    side.exec_seen += wl.expected[0] in lines
    if rows:
        side.first_elapsed_us.append(int(rows[0].rsplit(",", 1)[1]))
    (persist / wl.result).unlink()
    (persist / f"{wl.result}.csv").unlink()


def run(node: SandboxNode, wl: Workload, starts: int, work: Path) -> list[Side]:
    cri = node.cri
    pod = cri.run_pod("bench-startup", namespace="bench")
    sides = []
    try:
        # nydus-top record
        side, persist, arm_ms = Side("nydus-top record"), work / "nydus-top", []
        rec = harness.start_recorder(node.nri_socket, persist, args=["--image", wl.image])
        try:
            for i in range(starts):
                cid, ms = _start(cri, pod, f"ours-{i}", wl)
                side.start_ms.append(ms)
                harness.wait_exited(cri, cid)
                harness.wait_file(persist / f"{wl.result}.csv")  # renamed into place after the list
                line = rec.log.lines[rec.log.wait_for(f"({cid[:12]}) into", 1)]
                arm_ms.append(float(line.rsplit("mark placed in ", 1)[1].split(" ms")[0]))
                _score(side, persist, wl)
                cri.remove_container(cid)
        finally:
            rec.stop()
        side.note = (f"mark placed {statistics.median(arm_ms):.1f} ms (median), "
                     f"{pct(arm_ms, 0.95):.1f} ms (p95) after StartContainer reached nydus-top")
        sides.append(side)

        for name, server in (("optimizer-nri-plugin + native server", harness.tracer_server()),
                             ("optimizer-nri-plugin + Python server", python_server(work))):
            side, persist = Side(name), work / "optimizer"
            opt = harness.start_optimizer(node.optimizer_plugin, node.nri_socket, persist, server_path=server)
            try:
                for i in range(starts):
                    mark = len(opt.log.lines)
                    cid, ms = _start(cri, pod, f"optimizer-{len(sides)}-{i}", wl)
                    side.start_ms.append(ms)
                    harness.wait_exited(cri, cid)
                    # The server ends with the container; the plugin then closes the result files.
                    opt.log.wait_for("Get EOF from fanotify server", 10, start=mark)
                    _score(side, persist, wl)
                    cri.remove_container(cid)
            finally:
                opt.stop()
            sides.append(side)

        side = Side("no plugin (baseline)")
        for i in range(starts):
            cid, ms = _start(cri, pod, f"bare-{i}", wl)
            side.start_ms.append(ms)
            harness.wait_exited(cri, cid)
            cri.remove_container(cid)
        sides.append(side)
    finally:
        cri.remove_pod(pod)
    return sides


def _spawn_to_ready(server: Path, pid: int, target: Path) -> tuple[float, float]:
    """Milliseconds from spawning *server* (as the plugin does: own group, only its variables) to
    its ready byte, and from its exec to that byte (posix_spawn returns once the child has exec'd)."""
    ready_r, ready_w = os.pipe()
    os.set_inheritable(ready_w, True)
    out = os.open(os.devnull, os.O_WRONLY)
    env = {"_MNTNS_PID": str(pid), "_TARGET": str(target), "NYDUS_TOP_READY_FD": str(ready_w)}
    try:
        t0 = time.monotonic()
        child = os.posix_spawn(server, [str(server)], env, setpgroup=0,
                               file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)])
        t1 = time.monotonic()
        os.close(ready_w)
        status = os.read(ready_r, 5)
        t2 = time.monotonic()
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
    finally:
        os.close(ready_r)
        os.close(out)
    if status[:1] != b"R":
        raise RuntimeError(f"{server}: {status!r}")
    return (t2 - t0) * 1000, (t2 - t1) * 1000


def arm_latency(servers: dict[str, Path], arms: int, target: Path) -> dict[str, list[tuple[float, float]]]:
    """Spawn -> mark in place and exec -> mark in place for each server, interleaved, *arms* times each."""
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for _ in range(arms):
            for name, server in servers.items():
                times[name].append(_spawn_to_ready(server, sleeper.pid, target))
        return times
    finally:
        sleeper.kill()
        sleeper.wait()


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--interval-us", type=int, default=workload.INTERVAL_US)
    parser.add_argument("--dir", default="/var/lib/nydus-top/bench-startup", help="sandbox node directory")
    parser.add_argument("--arms", type=int, default=200, help="spawn -> ready runs per server")
    parser.add_argument("--workloads", default="static,python,perl")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.arms, args.workloads = 1, 3, "static"
    names = args.workloads.split(",")
    if set(names) - {"static", *interpreter_images.STARTS}:
        parser.error(f"--workloads: static, {', '.join(interpreter_images.STARTS)}")
    if set(names) & set(interpreter_images.STARTS):
        interpreter_images.ensure_strace()
    node = SandboxNode(args.dir)
    work = Path(args.dir) / "bench-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    node.up()
    results = []
    try:
        for name in names:
            wl = (static_workload(node, work, args.interval_us) if name == "static"
                  else interpreter_workload(node, name))
            results.append((wl, run(node, wl, args.starts, work)))
    finally:
        node.down()
    os.nice(-10)
    arms = arm_latency({"floor (ready at once)": ready_floor(work), "native server": harness.tracer_server(),
                        "Python server": python_server(work)}, args.arms, work)
    for wl, sides in results:
        print(f"{wl.title}, {args.starts} starts each")
        print(f"{'':<38} {'complete':>9} {'files min/med/max':>17} {'exec':>6} {'1st file ms':>11} "
              f"StartContainer ms med p95")
        for side in sides:
            print(side.row(args.starts))
        for side in sides:
            if side.note:
                print(f"{side.name}: {side.note}")
        print()
    print(f"{f'ready byte (mark in place), {args.arms} runs each':<44} {'spawn -> ms p50':>15} {'p95':>5} {'max':>5}"
          f"  {'exec -> ms p50':>15} {'p95':>5} {'max':>5}")
    for name, runs in arms.items():
        cols = []
        for ms in ([r[0] for r in runs], [r[1] for r in runs]):
            cols.append(f"{statistics.median(ms):>15.2f} {pct(ms, 0.95):5.2f} {max(ms):5.1f}")
        print(f"{name:<44} {cols[0]}  {cols[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
