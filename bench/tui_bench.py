"""TUI benchmark: drive the real app headless on 100k entries, then while ingesting 20k events/s.

Measures key press -> repaint: the key goes through the app's binding dispatch, its action
runs, then the whole screen is re-rendered from the widgets (render_line of every visible
row). The same keys on a 100-entry list run side by side, so the ratio shows what the list
size costs. Then a producer thread feeds 20k events/s (pre-built records, as the tracer hands
over parsed batches) while keys keep being pressed, once alone and once next to competing CPU
hogs (busy-loop processes the bench starts and stops itself); it reports throughput, how long
the UI ticks take, and the RSS. Every value is printed next to its target with value/target.

    .venv/bin/python bench/tui_bench.py [--entries 100000] [--rate 20000] [--seconds 5] [--hogs 2]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchkit
import psutil
from textual.pilot import Pilot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from nydus_top.model.trace import INBOX_BATCHES
from nydus_top.screens.app import NydusTopApp
from nydus_top.screens.trace import TraceScreen
from testkit.replay_data import make_backend, synthetic

TARGET_KEY_MS = 50.0
TARGET_RSS_MB = 250.0
KEYS = ["down", "pagedown", "end", "home", "space", "K", "J", "d", "u", "U", "n", "G", "T"]


async def key_latencies(app: NydusTopApp, rounds: int, gap: float = 0.0) -> tuple[list[float], list[float]]:
    """(full, changed): ms per key press from the press until the screen is repainted.

    full: binding dispatch + action + a full re-render of every visible line of the screen (an
    upper bound: Textual never repaints what did not change). changed: binding dispatch +
    action + every message it caused (e.g. the counters' update) + Textual's own repaint of
    the regions that changed, as its update timer does it."""
    full, changed = [], []
    pilot = Pilot(app)
    for _ in range(rounds):
        for key in KEYS:
            start = time.perf_counter()
            await app._check_bindings(key)  # what a key event does: find the binding, run the action
            app.screen._compositor.render_strips()  # full repaint of what is on screen
            full.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(gap)  # let the app's own tick run between keys
            start = time.perf_counter()
            await app._check_bindings(KEYS[(KEYS.index(key) + 1) % len(KEYS)])
            await pilot._wait_for_screen()  # the messages the action posted, handled
            app.screen._on_timer_update()  # Textual's repaint of the dirty regions
            changed.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(gap)
    return full, changed


def summary(name: str, values: list[float], target: float) -> str:
    p50 = statistics.median(values)
    p95 = statistics.quantiles(values, n=20)[-1]
    worst = max(values)
    return (f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms "
            f"(target {target:.0f} ms, p95 ratio {p95 / target:.2f})")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def idle_keys(entries: int) -> tuple[list[float], list[float]]:
    backend = make_backend()
    backend.recordings = {"c-nginx": synthetic(entries)}
    app = NydusTopApp(backend)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("slash", *"file1", "enter")  # a search so `n` has work to do
        await pilot.pause()
        backend.recordings = {}  # the tracer's batches are transient: only the list keeps them
        return await key_latencies(app, rounds=5)


class Hogs:
    """``count`` competing CPU-bound processes (busy loops), for the span of a ``with``."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Hogs:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


async def ingesting(entries: int, rate: int, seconds: float, hogs: int) -> list[float]:
    """Keys pressed every 20 ms while a producer feeds ``rate`` events/s, next to ``hogs`` CPU hogs;
    prints throughput, ticks, backlog and RSS, returns the key latencies."""
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
        with Hogs(hogs):
            t0 = time.perf_counter()
            producer.start()
            busy: list[float] = []
            busy_changed: list[float] = []
            ticks.clear()
            while producer.is_alive():
                full, changed = await key_latencies(app, rounds=1, gap=0.02)
                busy += full
                busy_changed += changed
            producer.join()
            fed_s = time.perf_counter() - t0
            busy_ticks = list(ticks)
        while run.drain():
            pass
        await pilot.pause()
        ingested = run.files - before
        label = f"while ingesting {rate}/s with {hogs} CPU hogs"
        print(f"fed {fed} events in {fed_s:.1f} s = {fed / fed_s:.0f}/s (target {rate}/s, "
              f"ratio {fed / fed_s / rate:.2f}); ingested {ingested} (all: {ingested == fed})")
        print(summary(f"key -> full repaint {label}", busy, TARGET_KEY_MS))
        print(summary(f"key -> repaint of what changed {label}", busy_changed, TARGET_KEY_MS))
        print(summary(f"UI tick (drain + repaint) {label}, {len(busy_ticks)} ticks", busy_ticks,
                      TARGET_KEY_MS))
        print(f"inbox backlog at tick start: max {max(backlog)} of {INBOX_BATCHES} batches "
              f"({rate // 100} events each); the tracer blocks only when it is full")
        rss = rss_mb()
        print(f"RSS {rss:.0f} MB with {run.items.seen} entries (before app: {baseline:.0f} MB; "
              f"target {TARGET_RSS_MB:.0f} MB, ratio {rss / TARGET_RSS_MB:.2f})")
        stop.set()
    return busy, busy_changed


async def main(entries: int, rate: int, seconds: float, hogs: int) -> None:
    small = await idle_keys(100)
    large = await idle_keys(entries)
    for kind, index in (("full repaint", 0), ("repaint of what changed", 1)):
        print(summary(f"key -> {kind}, 100 entries", small[index], TARGET_KEY_MS))
        print(summary(f"key -> {kind}, {entries} entries", large[index], TARGET_KEY_MS))
        print(f"  p50 ratio {entries} / 100 entries: "
              f"{statistics.median(large[index]) / statistics.median(small[index]):.2f}")
    quiet = await ingesting(entries, rate, seconds, 0)
    loaded = await ingesting(entries, rate, seconds, hogs)
    p95 = lambda values: statistics.quantiles(values, n=20)[-1]  # noqa: E731
    for kind, index in (("full repaint", 0), ("repaint of what changed", 1)):
        print(f"key -> {kind} p95 while ingesting, {hogs} CPU hogs / none: {p95(loaded[index]):.1f} / "
              f"{p95(quiet[index]):.1f} ms = {p95(loaded[index]) / p95(quiet[index]):.2f}; "
              f"with hogs / target: {p95(loaded[index]) / TARGET_KEY_MS:.2f}")


if __name__ == "__main__":
    parser = benchkit.parser(__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hogs", type=int, default=2, help="competing CPU-bound processes in the second ingest run")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.rate, args.seconds, args.hogs = 2_000, 2_000, 0.5, 0
    asyncio.run(main(args.entries, args.rate, args.seconds, args.hogs))
