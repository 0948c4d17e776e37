"""Synchronize handling time for 1000 synthetic containers (and their 1000 pods).

The containers are the container containerd 1.7 sent in the captured B-sync scenario, each with
its own ids, so every one is as large as a real one (about 2.8 KB). Two numbers:
  * in-process: the wire bytes of the request (framed the way Go sends them) through the plugin
    protocol, protobuf decoding, conversion and the model replacement, and the reply's bytes;
  * round trip: a runtime peer on a real UNIX socket sends the Synchronize and waits for the reply
    of a running PluginSession, which is what containerd waits for.
Run: .venv/bin/python bench/nri_sync.py [--containers N] [--runs R] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchkit

from nydus_top.model.node import NodeModel
from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.protocol import Call
from nydus_top.nri.session import PluginSession, _Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from testkit.frames import captured
from testkit.runtime_peer import RuntimePeer

TARGET_MS = 100.0


def synthetic_request(n: int) -> api.SynchronizeRequest:
    cap = next(c for c in captured("B-sync") if c.meta["method"] == "Synchronize" and c.meta["dir"] == "r2p")
    frames = mux.Demux().feed(cap.data)
    (msg,) = [m for _, p in frames for m in ttrpc.MessageReader().feed(p)]
    real = api.SynchronizeRequest.FromString(ttrpc.decode_request(msg.data).payload)
    # Keep the captured bytes whole (unknown fields too): clone the wire form, then set ids.
    raw_pod = real.pods[0].SerializeToString()
    raw_ctr = real.containers[0].SerializeToString()
    req = api.SynchronizeRequest()
    for i in range(n):
        pod = req.pods.add()
        pod.MergeFromString(raw_pod)
        pod.id = f"{i:064x}"
        pod.name = f"pod-{i}"
        ctr = req.containers.add()
        ctr.MergeFromString(raw_ctr)
        ctr.id = f"{i + n:064x}"
        ctr.pod_sandbox_id = pod.id
        ctr.name = f"ctr-{i}"
    return req


class _Transport:
    """Its transport: nothing is ever left unwritten."""

    def get_write_buffer_size(self) -> int:
        return 0


class _Sink:
    """Stands in for the socket writer of an in-process run."""

    def __init__(self) -> None:
        self.data = b""
        self.transport = _Transport()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.data += data


def in_process(wire: bytes, n: int) -> float:
    """Seconds to decode, apply and answer *wire* (a Synchronize of *n* containers) with no socket
    (on an event loop, as the session always runs)."""
    return asyncio.run(_in_process(wire, n))


async def _in_process(wire: bytes, n: int) -> float:
    model = NodeModel()
    session = PluginSession(model, "/unused")
    conn = _Connection(session, _Sink())  # type: ignore[arg-type]
    proto = conn.proto
    t0 = time.perf_counter()
    (call,) = proto.receive(wire)
    assert isinstance(call, Call)
    conn.handle(call)
    took = time.perf_counter() - t0
    assert len(model.containers) == n and conn.writer.data
    return took


def runtime_wire(req: api.SynchronizeRequest) -> bytes:
    body = ttrpc.encode_request("nri.pkg.api.v1alpha1.Plugin", "Synchronize", req.SerializeToString(), 2 * 10**9)
    return mux.encode_frames(1, ttrpc.encode_message(1, ttrpc.REQUEST, body))


async def round_trips(req: api.SynchronizeRequest, runs: int) -> list[float]:
    """Seconds from the request's first byte written to the reply read, per run."""
    body = ttrpc.encode_request("nri.pkg.api.v1alpha1.Plugin", "Synchronize", req.SerializeToString(), 2 * 10**9)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nri.sock"
        async with RuntimePeer(path) as peer:
            model = NodeModel()
            session = PluginSession(model, str(path), backoff=(0.01, 0.05))
            task = asyncio.ensure_future(session.run_forever())
            conn = await peer.accept()
            await conn.accept_registration()
            await conn.call("Configure", b"")
            for _ in range(runs):
                stream = conn.next_stream
                conn.next_stream += 2
                wire = mux.encode_frames(1, ttrpc.encode_message(stream, ttrpc.REQUEST, body))
                t0 = time.perf_counter()
                conn.send_raw(wire)
                ans = await conn.receive(1, timeout=30)
                out.append(time.perf_counter() - t0)
                assert ans.stream_id == stream and ttrpc.decode_response(ans.data).status.code == 0
                assert len(model.containers) == len(req.containers)
            session.stop()
            await task
    return out


def main() -> int:
    parser = benchkit.parser(__doc__)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.containers, args.runs = 20, 2
    req = synthetic_request(args.containers)
    wire = runtime_wire(req)
    local = sorted(in_process(wire, args.containers) for _ in range(args.runs))
    trips = sorted(asyncio.run(round_trips(req, args.runs)))
    med_local, med_trip = statistics.median(local) * 1000, statistics.median(trips) * 1000
    worst = trips[-1] * 1000
    print(f"Synchronize of {args.containers} containers + {args.containers} pods, "
          f"{len(wire) / 1e6:.2f} MB on the wire, {args.runs} runs")
    print(f"  in-process decode+apply+reply: median {med_local:.1f} ms, max {local[-1] * 1000:.1f} ms")
    print(f"  round trip over the socket:    median {med_trip:.1f} ms, max {worst:.1f} ms")
    print(f"  target <= {TARGET_MS:.0f} ms: median/target = {med_trip / TARGET_MS:.2f} "
          f"({'met' if worst <= TARGET_MS else 'NOT met'} for every run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
