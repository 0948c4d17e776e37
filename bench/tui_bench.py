"""TUI benchmark: drive the real app headless on 100k entries, then while ingesting 20k events/s.

Measures key press -> repaint: the key goes through the app's binding dispatch, its action
runs, then the whole screen is re-rendered from the widgets (render_line of every visible
row). The same keys on a 100-entry list run side by side, so the ratio shows what the list
size costs. Then a producer thread feeds 20k events/s (pre-built records, as the tracer hands
over parsed batches) while keys keep being pressed; it reports throughput, how long the UI
ticks take, and the RSS. Every value is printed next to its target with value/target.

    .venv/bin/python bench/tui_bench.py [--entries 100000] [--rate 20000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nydus_top.screens.app import NydusTopApp  # noqa: E402
from nydus_top.screens.trace import TraceScreen  # noqa: E402
from nydus_top.tracerun import INBOX_BATCHES  # noqa: E402
from tests.tui.data import make_backend, synthetic  # noqa: E402

TARGET_KEY_MS = 50.0
TARGET_RSS_MB = 250.0
KEYS = ["down", "pagedown", "end", "home", "space", "K", "J", "d", "u", "U", "n", "G", "T"]


async def key_latencies(app: NydusTopApp, rounds: int, gap: float = 0.0) -> list[float]:
    """ms from a key press until the screen is fully re-rendered, per press."""
    out = []
    for _ in range(rounds):
        for key in KEYS:
            start = time.perf_counter()
            await app._check_bindings(key)  # what a key event does: find the binding, run the action
            app.screen._compositor.render_strips()  # full repaint of what is on screen
            out.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(gap)  # let the app's own tick run between keys
    return out


def summary(name: str, values: list[float], target: float) -> str:
    p50 = statistics.median(values)
    p95 = statistics.quantiles(values, n=20)[-1]
    worst = max(values)
    return (f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms "
            f"(target {target:.0f} ms, p95 ratio {p95 / target:.2f})")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def idle_keys(entries: int) -> list[float]:
    backend = make_backend()
    backend.recordings = {"c-nginx": synthetic(entries)}
    app = NydusTopApp(backend)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("slash", *"file1", "enter")  # a search so `n` has work to do
        await pilot.pause()
        backend.recordings = {}  # the tracer's batches are transient: only the list keeps them
        return await key_latencies(app, rounds=10)


async def main(entries: int, rate: int, seconds: float) -> None:
    small = await idle_keys(100)
    large = await idle_keys(entries)
    print(summary("key -> repaint, 100 entries", small, TARGET_KEY_MS))
    print(summary(f"key -> repaint, {entries} entries", large, TARGET_KEY_MS))
    print(f"  p50 ratio {entries} / 100 entries: {statistics.median(large) / statistics.median(small):.2f}")

    backend = make_backend()
    backend.recordings = {"c-nginx": synthetic(entries)}
    app = NydusTopApp(backend)
    baseline = rss_mb()
    ticks: list[float] = []
    backlog: list[int] = []
    pump = app.pump

    def timed_pump() -> None:
        backlog.append(sum(r.queued for r in app.workspace.runs))
        start = time.perf_counter()
        pump()
        ticks.append((time.perf_counter() - start) * 1000)

    app.pump = timed_pump  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)) as pilot:
        start = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and len(screen.run.items) == entries
        print(f"open a trace of {entries} entries: {(time.perf_counter() - start) * 1000:.0f} ms (pilot included)")
        backend.recordings = {}
        await pilot.press("slash", *"file1", "enter")

        # A tracer thread feeding `rate` events/s in 100 batches/s while keys are pressed.
        run = screen.run
        fed = 0
        stop = threading.Event()
        batch = rate // 100
        total = int(rate * seconds)

        def produce() -> None:  # like the tracer thread: builds each batch, hands it over, forgets it
            nonlocal fed
            t0 = time.perf_counter()
            while fed < total and not stop.is_set():
                run.records(synthetic(batch, start=entries + fed))
                fed += batch
                time.sleep(max(0.0, t0 + fed / rate - time.perf_counter()))

        producer = threading.Thread(target=produce)
        before = run.files
        t0 = time.perf_counter()
        producer.start()
        busy: list[float] = []
        ticks.clear()
        while producer.is_alive():
            busy += await key_latencies(app, rounds=1, gap=0.02)
        producer.join()
        fed_s = time.perf_counter() - t0
        busy_ticks = list(ticks)
        while run.drain():
            pass
        await pilot.pause()
        ingested = run.files - before
        print(f"fed {fed} events in {fed_s:.1f} s = {fed / fed_s:.0f}/s (target {rate}/s, "
              f"ratio {fed / fed_s / rate:.2f}); ingested {ingested} (all: {ingested == fed})")
        print(summary(f"key -> repaint while ingesting {rate}/s", busy, TARGET_KEY_MS))
        print(summary(f"UI tick (drain + repaint) while ingesting, {len(busy_ticks)} ticks", busy_ticks,
                      TARGET_KEY_MS))
        print(f"inbox backlog at tick start: max {max(backlog)} of {INBOX_BATCHES} batches "
              f"({rate // 100} events each); the tracer blocks only when it is full")
        rss = rss_mb()
        print(f"RSS {rss:.0f} MB with {run.items.seen} entries (before app: {baseline:.0f} MB; "
              f"target {TARGET_RSS_MB:.0f} MB, ratio {rss / TARGET_RSS_MB:.2f})")
        stop.set()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.rate, args.seconds))
