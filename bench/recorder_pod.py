#!/usr/bin/env python3
"""The DaemonSet's recorder pod, measured while it records container starts on a sandbox node.

    sudo .venv/bin/python bench/recorder_pod.py [--starts 200] [--containerd 1.7] [--dir DIR]

The pod is deploy/daemonset.yaml's, run through CRI as kubelet would (tests/deploy/recorder_pod.py),
with the ConfigMap's config plus ``overwrite = true`` so that every start is recorded and saved
(the worst case: with the manifest's ``overwrite = false`` an image is recorded once per node
and later starts cost only a file check). The demo workload is started STARTS times, one after
the other (start, wait for its start-up files to be read, stop, remove), each recording saved.

Printed: the pod's memory (the sums of PSS and of RSS of its processes: the recorder, its tracer
helper, its forked spares and tracers, which share most pages, so RSS counts them several times;
and the pod's memory cgroup usage, what a memory limit is held against, page cache included),
idle after start-up and at its peak while recording, sampled every 20 ms; its CPU time (cgroup
accounting) at start-up and while recording, per start and as an average share of one CPU; the
starts per second the node managed. The manifest's requests and limits are derived from these
numbers (see the comment at ``resources`` in deploy/daemonset.yaml and bench/README.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchkit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts")]

from nydus_top.lists.files import result_paths  # noqa: E402
from sandbox import images  # noqa: E402
from sandbox.node import CONTAINERD_SUITES, DEFAULT_CONTAINERD, SandboxNode  # noqa: E402
from testkit.recorder_pod import (  # noqa: E402
    READY_LINE,
    daemonset,
    import_recorder_image,
    manifest,
    recorder_container,
    run_recorder_pod,
)

SAMPLE_SECONDS = 0.02
PERSIST_IN_POD = "/opt/nri/optimizer/results"


class PodCgroup:
    """The recorder container's cgroups (v1 memory + cpuacct, or v2), found under the node's parent."""

    def __init__(self, node: SandboxNode, container_id: str) -> None:
        found = [d / container_id for d in node.cgroup_dirs() if (d / container_id).is_dir()]
        self.v2 = next((d for d in found if (d / "cpu.stat").exists() and (d / "memory.current").exists()), None)
        self.memory = next((d for d in found if (d / "memory.usage_in_bytes").exists()), None)
        self.cpuacct = next((d for d in found if (d / "cpuacct.usage").exists()), None)
        if self.v2 is None and (self.memory is None or self.cpuacct is None):
            raise RuntimeError(f"no memory/cpu cgroup of container {container_id[:12]} under {node.cgroup_parent}")

    def cpu_seconds(self) -> float:
        if self.v2 is not None:
            stat = dict(line.split() for line in (self.v2 / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        return int((self.cpuacct / "cpuacct.usage").read_text()) / 1e9  # type: ignore[operator]

    def memory_bytes(self) -> int:
        if self.v2 is not None:
            return int((self.v2 / "memory.current").read_text())
        return int((self.memory / "memory.usage_in_bytes").read_text())  # type: ignore[operator]

    def pids(self) -> list[int]:
        directory = self.v2 or self.memory
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]  # type: ignore[operator]

    def rss_pss_bytes(self) -> tuple[int, int]:
        """The sums of RSS and of PSS (shared pages divided among their sharers) of the pod's processes."""
        rss = pss = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            except OSError:
                continue  # a tracer that just ended
        return rss, pss


class Sampler:
    """Peaks of RSS and cgroup memory, sampled on a thread."""

    def __init__(self, cgroup: PodCgroup) -> None:
        self.cgroup = cgroup
        self.peak_rss = self.peak_pss = self.peak_memory = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = self.cgroup.rss_pss_bytes()
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_memory = max(self.peak_memory, self.cgroup.memory_bytes())
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--containerd", choices=sorted(CONTAINERD_SUITES), default=DEFAULT_CONTAINERD)
    parser.add_argument("--dir", help="sandbox node directory (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    if args.quick:
        args.starts = 2
    if os.geteuid() != 0:
        print("bench/recorder_pod.py: needs root (it runs a sandbox node)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nydus-top-podbench-") as tmp:
        node = SandboxNode(Path(args.dir) if args.dir else Path(tmp) / "node", args.containerd)
        node.up()
        try:
            return _bench(node, Path(tmp), args.starts)
        finally:
            if not args.dir:
                node.down(purge=True)


def _bench(node: SandboxNode, work: Path, starts: int) -> int:
    doc = daemonset()
    import_recorder_image(node, recorder_container(doc)["image"])
    config = manifest("configmap.yaml")["data"]["config.toml"].replace("overwrite = false", "overwrite = true")
    saved_line = f"saved {result_paths(PERSIST_IN_POD, images.DEMO_IMAGE).list} "
    t0 = time.monotonic()
    with run_recorder_pod(node, work, config=config) as pod:
        if pod.wait_for(READY_LINE) != READY_LINE:
            print(f"the recorder did not start: {pod.log()[-2000:]}", file=sys.stderr)
            return 1
        ready_s = time.monotonic() - t0
        cgroup = PodCgroup(node, pod.container_id)
        (idle_rss, idle_pss), idle_memory = cgroup.rss_pss_bytes(), cgroup.memory_bytes()
        startup_cpu = cgroup.cpu_seconds()
        cri = node.cri
        pod_id = cri.run_pod("bench-demo", namespace="bench")
        try:
            with Sampler(cgroup) as sampler:
                cpu0, wall0 = cgroup.cpu_seconds(), time.monotonic()
                for n in range(starts):
                    cid = cri.create_container(pod_id, f"demo-{n}", images.DEMO_IMAGE)
                    cri.start_container(cid)
                    node.wait_for_log(cid, images.DEMO_READY_LINE)
                    cri.stop_container(cid, timeout=5)
                    cri.remove_container(cid)
                    if (n + 1) % 50 == 0:
                        print(f"  {n + 1} starts", file=sys.stderr)
                # Wait for the last save (each start's is logged once).
                deadline = time.monotonic() + 60
                while pod.log().count(saved_line) < starts and time.monotonic() < deadline:
                    time.sleep(0.05)
                wall, cpu = time.monotonic() - wall0, cgroup.cpu_seconds() - cpu0
            (after_rss, after_pss), after_memory = cgroup.rss_pss_bytes(), cgroup.memory_bytes()
        finally:
            cri.remove_pod(pod_id)
        log = pod.log()
    saved = log.count(saved_line)
    print(f"recorder pod (deploy/daemonset.yaml via CRI, containerd {node.containerd}), {starts} demo starts, "
          f"each recorded and saved (overwrite = true)")
    print(f"  saved lists: {saved}/{starts}; incomplete: {log.count('INCOMPLETE')}; "
          f"not recorded: {log.count('cannot record')}")
    print(f"  start-up: ready {ready_s:.2f} s after CreateContainer, CPU {startup_cpu * 1000:.0f} ms")
    print(f"  memory idle:   PSS {_mib(idle_pss)}, RSS {_mib(idle_rss)}, cgroup {_mib(idle_memory)}")
    print(f"  memory peak:   PSS {_mib(sampler.peak_pss)}, RSS {_mib(sampler.peak_rss)}, cgroup "
          f"{_mib(sampler.peak_memory)} (sampled every {SAMPLE_SECONDS * 1000:.0f} ms)")
    print(f"  memory after:  PSS {_mib(after_pss)}, RSS {_mib(after_rss)}, cgroup {_mib(after_memory)}")
    print(f"  CPU recording: {cpu:.2f} s in {wall:.1f} s = {cpu / wall * 1000:.0f} mCPU average, "
          f"{cpu / starts * 1000:.1f} ms per start ({starts / wall:.1f} starts/s)")
    return 0 if saved == starts else 1


if __name__ == "__main__":
    sys.exit(main())
