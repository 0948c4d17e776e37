"""``nydus-top ps``: list the node's pods and containers as NRI reports them, or stream changes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from nydus_top.config import ENV_NRI_SOCKET, ConfigError, load_config
from nydus_top.model.node import Container, EventKind, NodeEvent, NodeModel, Pod
from nydus_top.nri.errors import ProtocolError
from nydus_top.nri.session import SOCKET_FD_ENV, ConnectionLost, PluginSession
from nydus_top.text import EscapingFormatter, printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nri-idx", metavar="NN", default=None,
                        help="two-digit plugin index to register with (default: [nri] plugin_index, 90)")
    parser.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    parser.add_argument("--watch", action="store_true",
                        help="stream JSON lines until interrupted: a 'sync' line with the full listing on every"
                        " (re)connection, then one line per pod or container lifecycle event")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="give up when the runtime has not synchronized within S seconds (default 10)")


def listing_json(pods: Mapping[str, Pod], containers: Mapping[str, Container]) -> dict[str, list[dict[str, Any]]]:
    return {
        "pods": [asdict(p) for p in sorted(pods.values(), key=lambda p: (p.namespace, p.name, p.id))],
        "containers": [asdict(c) for c in sorted(containers.values(), key=lambda c: (c.pod_id, c.name, c.id))],
    }


def event_json(event: NodeEvent, model: NodeModel) -> dict[str, object]:
    out: dict[str, object] = {"event": str(event.kind), "time": event.time}
    if event.kind is EventKind.SYNC:
        out.update(listing_json(*model.snapshot()))
    if event.pod is not None:
        out["pod"] = asdict(event.pod)
    if event.container is not None:
        out["container"] = asdict(event.container)
    return out


def age(seconds: float | None) -> str:
    """A duration as the AGE column shows it: 45s, 12m, 5h, 3d ("-" when unknown)."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    for unit, size, below in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if whole < below:
            return f"{whole // size}{unit}"
    return f"{whole // 86400}d"


def _since(when: float | None, now: float) -> float | None:
    return None if when is None else now - when


def process_started(pid: int, proc: str = "/proc") -> float | None:
    """When process *pid* started (Unix seconds), from the kernel's own record; None if unknown.
    For containers the runtime gives no time for (containerd 1.7's NRI has none)."""
    if pid <= 0:
        return None
    try:
        with open(f"{proc}/{pid}/stat", "rb") as fh:
            stat = fh.read(4096)
        with open(f"{proc}/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        ticks = int(stat.rpartition(b")")[2].split()[19])  # field 22, starttime, counted after the name
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def table(pods: Mapping[str, Pod], containers: Mapping[str, Container], now: float | None = None,
          proc: str = "/proc") -> str:
    """Human listing: one row per container, plus one per pod without containers. AGE: since the
    container started (created, if it has not; else since its process started: a pod's, its
    sandbox process), at *now* (Unix seconds; default: the clock)."""
    at = time.time() if now is None else now
    rows: list[tuple[str, ...]] = [("NAMESPACE", "POD", "CONTAINER", "STATE", "AGE", "PID", "IMAGE", "ID")]
    by_pod: dict[str, list[Container]] = {}
    for c in containers.values():
        by_pod.setdefault(c.pod_id, []).append(c)
    orphans = {c.pod_id for c in containers.values()} - set(pods)
    unknown = [Pod(pod_id, "?", "?", "") for pod_id in sorted(orphans)]
    for pod in sorted([*pods.values(), *unknown], key=lambda p: (p.namespace, p.name, p.id)):
        ctrs = sorted(by_pod.get(pod.id, []), key=lambda c: (c.name, c.id))
        if not ctrs:
            pod_age = age(_since(process_started(pod.pid, proc), at))
            rows.append((pod.namespace, pod.name, "-", f"pod {pod.state}", pod_age, str(pod.pid or "-"), "-",
                         pod.id[:12]))
        for c in ctrs:
            started = c.started_at or c.created_at or process_started(c.pid, proc)
            rows.append((pod.namespace, pod.name, c.name, str(c.state), age(_since(started, at)), str(c.pid or "-"),
                         c.image or "-", c.id[:12]))
    rows = [tuple(printable(v) for v in r) for r in rows]  # names come from the runtime
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def nri_failure(target: str, exc: BaseException) -> str:
    """``<socket>: <cause> (<what fixes it>)``: why containerd could not be asked over NRI."""
    cause = f"[Errno {exc.errno}] {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
    hint = ""
    if isinstance(exc, FileNotFoundError):
        hint = (f" (name the socket with --nri-socket PATH or ${ENV_NRI_SOCKET}; is NRI enabled in containerd:"
                " disable = false, disable_connections = false?)")
    elif isinstance(exc, ConnectionRefusedError):
        hint = " (is containerd running, with NRI enabled: disable = false, disable_connections = false?)"
    elif isinstance(exc, PermissionError):
        hint = " (the NRI socket is root's)"
    return f"{target}: {cause}{hint}"


async def list_once(session: PluginSession, timeout: float) -> None:
    synced = asyncio.Event()

    def on_event(ev: NodeEvent) -> None:
        if ev.kind is EventKind.SYNC:
            synced.set()

    unsubscribe = session.model.subscribe(on_event)
    serve = asyncio.ensure_future(session.run_once())
    wait = asyncio.ensure_future(synced.wait())
    try:
        done, _ = await asyncio.wait({serve, wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if wait not in done:
            if serve in done:
                serve.result()  # raises what ended the connection
                raise ConnectionLost("the runtime closed the connection before synchronizing")
            raise ConnectionLost(f"no Synchronize from the runtime within {timeout:g} s")
    finally:
        unsubscribe()
        wait.cancel()
        session.stop()
        await asyncio.gather(serve, return_exceptions=True)


async def _watch(session: PluginSession) -> bool:
    """Print events from a thread of their own: a reader that stalls holds only that thread,
    never the NRI loop (which would stall containerd). Lines queue up meanwhile; none is lost.
    Returns True when Ctrl-C ended it. The disconnection our own stop causes is not an event."""
    loop = asyncio.get_running_loop()
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    stopping = interrupted = False

    def stop(by_user: bool) -> None:
        nonlocal stopping, interrupted
        stopping, interrupted = True, interrupted or by_user
        session.stop()

    def write() -> None:
        try:
            while (line := lines.get()) is not None:
                sys.stdout.write(line)
                sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (`| head`): done, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            loop.call_soon_threadsafe(stop, False)

    writer = threading.Thread(target=write, name="ps-watch-output", daemon=True)
    writer.start()
    def on_event(event: NodeEvent) -> None:
        if not (stopping and event.kind is EventKind.DISCONNECTED):
            lines.put(json.dumps(event_json(event, session.model)) + "\n")

    session.model.subscribe(on_event)
    loop.add_signal_handler(signal.SIGINT, stop, True)
    await session.run_forever()
    lines.put(None)
    await asyncio.to_thread(writer.join)
    return interrupted


def run(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("nydus-top: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    model = NodeModel()
    try:
        config = load_config(args.config)
        socket_path = args.nri_socket or (None if os.environ.get(SOCKET_FD_ENV) else str(config.nri_socket))
        session = PluginSession(model, socket_path, config.plugin_name, args.nri_idx or config.plugin_index)
    except (ConfigError, ValueError) as exc:
        print(printable(f"nydus-top ps: {exc}"), file=sys.stderr)
        return 2
    if args.watch:
        return 130 if asyncio.run(_watch(session)) else 0
    try:
        asyncio.run(list_once(session, args.timeout))
    except (OSError, ConnectionLost, ProtocolError) as exc:
        print(printable(f"nydus-top ps: cannot list from NRI at {nri_failure(session.target, exc)}"),
              file=sys.stderr)
        return 1
    pods, containers = model.snapshot()
    if args.json:
        print(json.dumps(listing_json(pods, containers), indent=2))
    else:
        print(table(pods, containers))
    return 0
