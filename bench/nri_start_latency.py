"""Container start latency with nydus-top's NRI plugin connected, against none and Go's.

One run on one sandbox node (containerd 1.7.24), side by side, in interleaved blocks:
  none       no NRI plugin connected;
  go         Debian's optimizer-nri-plugin (the reference Go plugin; its fanotify server is a
             stub that exits at once, so only its NRI work is measured);
  nydus-top  our PluginSession in its own process, with a start hook that returns at once,
             as the tracer's hook does for a container nobody armed.
Each sample is the CRI StartContainer call (runc start and every plugin's StartContainer
round trip); creation and removal are outside the timed part. runc's own start varies by
tens of ms, more than a plugin adds, so the plugins also connect through a recording proxy:
the time from containerd's StartContainer request to the plugin's answer, measured on the
socket the same way for both plugins, is the precise comparison.
Run as root: .venv/bin/python bench/nri_start_latency.py [--starts 50] [--blocks 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchkit

from nydus_top.nri import mux, ttrpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

CONFIGS = ("none", "go", "nydus-top")
TARGET_MS = 1.0


def serve_plugin(socket_path: str) -> None:
    """Child process: our session with a no-op start hook; prints 'ready' once synchronized."""
    from nydus_top.model.node import EventKind, NodeModel
    from nydus_top.nri.session import PluginSession

    async def main() -> None:
        model = NodeModel()
        session = PluginSession(model, socket_path, idx="90")

        async def untraced(pod, container, deadline) -> None:
            return None

        session.add_start_hook(untraced)
        model.subscribe(lambda ev: ev.kind is EventKind.SYNC and print("ready", flush=True))
        await session.run_forever()

    asyncio.run(main())


class RecordingProxy:
    """Forwards plugin connections to containerd's NRI socket on its own thread and times, per
    StateChange(START_CONTAINER) call, containerd's request to the plugin's response."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        self.listen, self.upstream = listen, upstream
        self.start_answers: list[float] = []  # ms
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_unix_server(self._serve, str(self.listen)))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, p_reader: asyncio.StreamReader, p_writer: asyncio.StreamWriter) -> None:
        r_reader, r_writer = await asyncio.open_unix_connection(str(self.upstream))
        sent: dict[int, float] = {}  # stream id of a StartContainer request -> when it passed

        async def pump(reader, writer, runtime_to_plugin: bool) -> None:
            demux, conn1 = mux.Demux(), ttrpc.MessageReader()
            while data := await reader.read(1 << 16):
                now = time.perf_counter()
                writer.write(data)
                for conn_id, payload in demux.feed(data):
                    if conn_id != mux.PLUGIN_CONN:
                        continue
                    for msg in conn1.feed(payload):
                        if runtime_to_plugin and b"\x08\x06" == ttrpc.decode_request(msg.data).payload[:2]:
                            sent[msg.stream_id] = now  # StateChangeEvent.event = START_CONTAINER
                        elif not runtime_to_plugin and msg.stream_id in sent:
                            self.start_answers.append((now - sent.pop(msg.stream_id)) * 1000)
            writer.close()

        await asyncio.gather(pump(r_reader, p_writer, True), pump(p_reader, r_writer, False),
                             return_exceptions=True)


class Plugin:
    """A plugin process connected to the node's NRI socket, stopped on exit."""

    def __init__(self, config: str, node, socket_path: Path, work: Path) -> None:
        self.config, self.node, self.socket_path, self.work = config, node, socket_path, work
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Plugin:
        if self.config == "nydus-top":
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve",
                                          str(self.socket_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout.readline().strip() == "ready"
        elif self.config == "go":
            server = self.work / "optimizer-server"
            server.write_text("#!/bin/sh\nexit 0\n")
            server.chmod(0o755)
            before = self.node.log.read_text(errors="replace").count("registered as")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(self.socket_path))
            self.proc = subprocess.Popen(
                [str(self.node.optimizer_plugin), "--name", "optimizer", "--idx", "02",
                 "--server-path", str(server), "--persist-dir", str(self.work / "results"), "--overwrite"],
                env={"NRI_PLUGIN_SOCKET": str(sock.fileno())}, pass_fds=[sock.fileno()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sock.close()
            deadline = time.monotonic() + 10
            while self.node.log.read_text(errors="replace").count("registered as") == before:
                assert time.monotonic() < deadline, "optimizer-nri-plugin did not register"
                time.sleep(0.02)
            time.sleep(0.2)  # registration is logged before Configure and Synchronize
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def block(node, config: str, block_no: int, starts: int, warmup: int) -> list[float]:
    from sandbox import images

    cri = node.cri
    pod = cri.run_pod(f"bench-{config}-{block_no}", namespace="bench")
    samples = []
    try:
        for i in range(warmup + starts):
            cid = cri.create_container(pod, f"c{i}", images.PAUSE_IMAGE)
            t0 = time.perf_counter()
            cri.start_container(cid)
            took = time.perf_counter() - t0
            cri.stop_container(cid)
            cri.remove_container(cid)
            if i >= warmup:
                samples.append(took * 1000)
    finally:
        cri.remove_pod(pod)
    return samples


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--starts", type=int, default=50, help="timed starts per configuration")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved blocks the starts are split into")
    parser.add_argument("--warmup", type=int, default=2, help="untimed starts at the head of every block")
    parser.add_argument("--serve", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.starts, args.blocks, args.warmup = 2, 1, 0
    if args.serve:
        serve_plugin(args.serve)
        return 0
    from sandbox.node import SandboxNode

    per_block = args.starts // args.blocks
    results: dict[str, list[float]] = {c: [] for c in CONFIGS}
    answers: dict[str, list[float]] = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="nydus-top-bench-") as tmp:
        node = SandboxNode(Path(tmp) / "node")
        node.up()
        proxy = RecordingProxy(Path(tmp) / "proxy.sock", node.nri_socket)
        try:
            for b in range(args.blocks):
                for config in CONFIGS[b % 3:] + CONFIGS[: b % 3]:  # rotate the order per block
                    work = Path(tmp) / f"{config}-{b}"
                    work.mkdir()
                    with Plugin(config, node, proxy.listen, work):
                        del proxy.start_answers[:]
                        results[config] += block(node, config, b, per_block, args.warmup)
                        answers[config] += proxy.start_answers[args.warmup:]
        finally:
            node.down()
    base_med, base_p95 = statistics.median(results["none"]), p95(results["none"])
    print(f"container start latency (CRI StartContainer), {per_block * args.blocks} starts each, "
          f"{args.blocks} interleaved blocks")
    print(f"{'plugin':<10} {'median ms':>10} {'p95 ms':>8} {'added med':>10} {'added p95':>10} {'ratio med':>10}")
    added = {}
    for config in CONFIGS:
        med, q95 = statistics.median(results[config]), p95(results[config])
        added[config] = (med - base_med, q95 - base_p95)
        print(f"{config:<10} {med:>10.1f} {q95:>8.1f} {added[config][0]:>+10.1f} {added[config][1]:>+10.1f} "
              f"{med / base_med:>10.3f}")
    print("StartContainer request -> plugin answer, on the socket (through the proxy):")
    for config in ("go", "nydus-top"):
        a = answers[config]
        print(f"{config:<10} {statistics.median(a):>10.2f} {p95(a):>8.2f}   ({len(a)} starts)")
    d_med = statistics.median(answers["nydus-top"]) - statistics.median(answers["go"])
    d_p95 = p95(answers["nydus-top"]) - p95(answers["go"])
    verdict = "met" if d_med <= TARGET_MS and d_p95 <= TARGET_MS else "NOT met"
    print(f"nydus-top minus Go: median {d_med:+.2f} ms, p95 {d_p95:+.2f} ms (target <= {TARGET_MS:g} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
