"""What metrics and health ([metrics] address) cost the recorder: memory, and time per container start.

Side by side, metrics off (the recorder as before) against on:

* memory: a fresh child process each (``python -I``) sets up what ``record`` sets up for one or
  the other (the record command imported, a Recorder on a loop; with metrics: a Metrics object,
  the endpoint listening on 127.0.0.1, every labelled series made, 64 registries, and scraped
  ``--scrapes`` times); resident memory (``/proc/self/statm``) after a full collection, median of
  ``--runs`` children each. Target: at most 5 MiB more.
* time per start: the recorder's own calls a recorded start makes that count (``Recorder.select``
  on a real planner, and the save's ``_count``: files and bytes histograms, incomplete causes),
  timed in interleaved blocks with metrics None and with Metrics; plus the endpoint's share of a
  start: one /metrics scrape and three probes every 15 s over real HTTP on 127.0.0.1, charged to
  one start a second (a busy node starts more, so less each). Target: at most 1 ms more a start.

Usage: ``.venv/bin/python bench/service_cost.py [--starts 2000] [--blocks 10] [--runs 3] [--quick]``.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_MIB = 5.0
TARGET_MS = 1.0
SCRAPE_EVERY_S = 15.0  # Prometheus' usual interval; the probes: readiness 5 s, liveness 10 s
PROBES_PER_SCRAPE = 3 + 1.5
STARTS_PER_S = 1.0  # the rate the endpoint's cost is charged to (a quiet node: the worst share)


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def child_memory(metrics_on: bool, scrapes: int) -> None:
    """Child process: set up as record does, print the resident bytes."""
    import nydus_top.commands.record  # noqa: F401 - what record loads either way
    from nydus_top.recording.recorder import Recorder, RecordSettings

    async def main() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            metrics = None
            endpoint = None
            if metrics_on:
                from nydus_top.recording.endpoint import Endpoint
                from nydus_top.recording.metrics import Metrics

                metrics = Metrics()
                for i in range(64):
                    metrics.pushes_queued.labels(metrics.registry_label(f"registry-{i}.example:5000")).inc()
            recorder = Recorder(RecordSettings(Path(tmp)), lambda line: None, metrics=metrics)
            if metrics is not None:
                metrics.observe(connected=lambda: True, connections=lambda: 1, push_queue=lambda: 0,
                                memory_used=lambda: recorder.budget.used,
                                memory_limit=lambda: recorder.budget.max_bytes)
                endpoint = Endpoint(metrics, lambda: True)
                _, port = await endpoint.start("127.0.0.1:0")
                for _ in range(scrapes):
                    await asyncio.to_thread(_get, port, "/metrics")
                await endpoint.close()
            return _rss()

    print(asyncio.run(main()))


def memory(metrics_on: bool, scrapes: int) -> int:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import service_cost; "
            f"service_cost.child_memory({metrics_on!r}, {scrapes!r})")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir())
    return int(done.stdout.split()[-1])


def start_cost(starts: int, blocks: int) -> tuple[float, float]:
    """Seconds per start of the counting calls, metrics off and on (medians of interleaved blocks)."""
    from nydus_top.lists.compact import CompactList
    from nydus_top.model.node import Container, ContainerState, Pod
    from nydus_top.recording.metrics import Metrics
    from nydus_top.recording.recorder import Recorder, RecordSettings

    files = CompactList(1 << 30)
    for i in range(500):
        files.append(f"/usr/lib/file-{i}.so", 4096 * i, i)
    pod = Pod(id="pod", name="p", namespace="bench", uid="u")

    class Rec:  # what Recorder._count reads of a Recording
        def __init__(self) -> None:
            self.files = files
            self.causes: list[str] = []

    with tempfile.TemporaryDirectory() as tmp:
        off = Recorder(RecordSettings(Path(tmp), overwrite=True), lambda line: None)
        on = Recorder(RecordSettings(Path(tmp), overwrite=True), lambda line: None, metrics=Metrics())
        rec = Rec()
        results: dict[bool, list[float]] = {False: [], True: []}
        for block in range(blocks * 2):
            recorder = on if block % 2 else off
            begin = time.perf_counter()
            for i in range(starts):
                container = Container(id=f"c{i}", pod_id="pod", name="app", image="registry.example/app:1",
                                      state=ContainerState.RUNNING)
                plan = recorder.select(pod, container)
                assert plan is not None
                recorder.planner.done(plan.container_id)
                if recorder.metrics is not None:
                    recorder.metrics.starts_recorded.inc()
                    recorder.metrics.saves.inc()
                    recorder.metrics.runs_kept.inc()
                    Recorder._count(rec, recorder.metrics)  # type: ignore[arg-type]
            results[recorder is on].append((time.perf_counter() - begin) / starts)
    return statistics.median(results[False]), statistics.median(results[True])


def endpoint_share(rounds: int) -> float:
    """Seconds of endpoint work charged to one start: a scrape and its probes, per start."""
    from nydus_top.recording.endpoint import Endpoint
    from nydus_top.recording.metrics import Metrics

    async def main() -> float:
        metrics = Metrics()
        metrics.observe(connected=lambda: True, connections=lambda: 1, push_queue=lambda: 0,
                        memory_used=lambda: 0, memory_limit=lambda: 256 << 20)
        endpoint = Endpoint(metrics, lambda: True)
        _, port = await endpoint.start("127.0.0.1:0")
        loop = asyncio.get_running_loop()
        cpu = 0.0
        for _ in range(rounds):  # the loop's CPU time while it serves (the client runs on a thread)
            begin = time.thread_time()
            scrape = loop.run_in_executor(None, _get, port, "/metrics")
            await scrape
            probes = [loop.run_in_executor(None, _get, port, "/readyz") for _ in range(int(PROBES_PER_SCRAPE))]
            await asyncio.gather(*probes)
            cpu += time.thread_time() - begin
        await endpoint.close()
        return cpu / rounds

    per_scrape = asyncio.run(main())
    return per_scrape / (SCRAPE_EVERY_S * STARTS_PER_S)


def main() -> None:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--starts", type=int, default=2000, help="starts per timed block")
    parser.add_argument("--blocks", type=int, default=10, help="timed blocks of each (interleaved)")
    parser.add_argument("--runs", type=int, default=3, help="child processes of each for memory")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes in the memory child")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.blocks, args.runs, args.scrapes = 50, 1, 1, 2
    off = [memory(False, args.scrapes) for _ in range(args.runs)]
    on = [memory(True, args.scrapes) for _ in range(args.runs)]
    added_mib = (statistics.median(on) - statistics.median(off)) / (1 << 20)
    cost_off, cost_on = start_cost(args.starts, args.blocks)
    share = endpoint_share(3 if args.quick else 50)
    added_ms = (cost_on - cost_off + share) * 1000
    print(json.dumps({"memory_off_mib": round(statistics.median(off) / (1 << 20), 2),
                      "memory_on_mib": round(statistics.median(on) / (1 << 20), 2),
                      "start_off_us": round(cost_off * 1e6, 2), "start_on_us": round(cost_on * 1e6, 2),
                      "endpoint_share_us": round(share * 1e6, 2)}))
    if args.quick:
        print(f"quick run (no targets): memory +{added_mib:.2f} MiB, +{added_ms:.4f} ms a start")
        return
    print(f"memory added: {added_mib:.2f} MiB / {TARGET_MIB:g} MiB target = {added_mib / TARGET_MIB:.3f}")
    print(f"time added a start: {added_ms:.4f} ms / {TARGET_MS:g} ms target = {added_ms / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
