"""Item 14 of issue 9: coming back after containerd does, and saying what was missed meanwhile.

While nothing accepts on the socket (no file, or connection refused) the session retries every
session.CONNECT_RETRY seconds whatever its backoff, and leaves the backoff as it was; the latency
to a socket that becomes connectable is measured by bench/nri_reconnect.py. A resync after a
disconnection names the containers that started meanwhile (NodeEvent.missed_starts), and
``record`` logs one line for each.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from nydus_top.model.node import EventKind, NodeEvent
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import session as nri_session
from testkit.hostile_peer import Served, run
from testkit.runtime_peer import RuntimePeer, container_msg, pod_msg
from tests.hostile.test_peer_flapping import flap

NYDUS_TOP = Path(sys.executable).parent / "nydus-top"


@pytest.mark.parametrize("gone", ["absent", "refused"])
def test_while_nothing_accepts_the_session_retries_every_connect_retry_whatever_its_backoff(
        tmp_path: Path, gone: str) -> None:
    async def main():
        async with Served(tmp_path, backoff=(0.01, 10.0)) as s:
            attempts: asyncio.Queue[float] = asyncio.Queue()  # the wait before each attempt
            run_once = s.session.run_once

            async def counted():
                attempts.put_nowait(s.session.last_wait)
                return await run_once()

            s.session.run_once = counted
            for _ in range(5):  # a broken runtime first: the backoff grows
                await flap(s)
            conn = await s.peer.accept(10)
            await conn.handshake()
            grown = s.session.next_retry
            assert grown == 0.32
            await s.peer.close()  # containerd dies: no listener, no socket file
            stale = None
            if gone == "refused":  # ... or its socket file is left behind, refusing connections
                stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                stale.bind(str(s.path))
            conn.close()
            for _ in range(6):
                await asyncio.wait_for(attempts.get(), 10)
            # after that connection (which got connected): the backoff; then nothing accepts
            assert await asyncio.wait_for(attempts.get(), 10) == grown
            for _ in range(4):
                assert await asyncio.wait_for(attempts.get(), 10) == nri_session.CONNECT_RETRY
            assert s.session.next_retry == 2 * grown  # the backoff is where that connection left it
            if stale is not None:
                stale.close()
                s.path.unlink()
            await s.peer.__aenter__()  # containerd is back
            conn = await s.peer.accept(10)
            assert s.session.last_wait == nri_session.CONNECT_RETRY  # connected by the next poll
            await conn.handshake()

    run(main())


def test_a_resync_names_the_containers_that_started_while_disconnected(tmp_path: Path) -> None:
    async def main():
        async with Served(tmp_path) as s:
            syncs: list[NodeEvent] = []
            s.model.subscribe(lambda ev: ev.kind is EventKind.SYNC and syncs.append(ev))
            conn = await s.peer.accept()
            await conn.handshake(pods=[pod_msg(1)], containers=[container_msg(1), container_msg(9)])
            disconnected = asyncio.Event()
            s.model.subscribe(lambda ev: ev.kind is EventKind.DISCONNECTED and disconnected.set())
            conn.close()
            await asyncio.wait_for(disconnected.wait(), 10)
            since = time.time_ns()
            containers = [
                container_msg(1),  # known before
                container_msg(2, started_at=since + 10**9),  # started meanwhile
                container_msg(3, started_at=since - 3600 * 10**9),  # started long before: not ours to report
                container_msg(4, state=api.CONTAINER_CREATED),  # not started
                container_msg(5),  # running, no start time (containerd 1.7): started meanwhile
                container_msg(6, state=api.CONTAINER_STOPPED),  # started and stopped meanwhile
            ]
            conn = await s.peer.accept()
            await conn.handshake(pods=[pod_msg(i) for i in range(1, 7)], containers=containers)
            assert syncs[0].missed_starts == ()  # the first sync: before us, not missed
            assert [c.id for c in syncs[1].missed_starts] == ["ctr0002", "ctr0005", "ctr0006"]

    run(main())


def test_record_logs_one_line_for_a_start_it_missed_while_disconnected(tmp_path: Path) -> None:
    sock = tmp_path / "nri.sock"
    args = [str(NYDUS_TOP), "record", "--nri-socket", str(sock), "--persist-dir", str(tmp_path / "out")]
    missed = "ns/pod-2/c-2 (ctr0002) started while disconnected: not recorded"

    async def main():
        async with RuntimePeer(sock) as peer:
            proc = await asyncio.create_subprocess_exec(*args, cwd=tmp_path, stderr=asyncio.subprocess.PIPE)
            lines: list[str] = []

            async def line_with(text: str) -> None:
                while text not in (line := (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()):
                    assert line, f"record ended before logging {text!r}: {lines}"
                    lines.append(line)
                lines.append(line)

            try:
                conn = await peer.accept(30)
                await conn.handshake(pods=[pod_msg(1)], containers=[container_msg(1)])
                await line_with("recording container starts via")
                conn.close()  # the runtime goes away; meanwhile ctr0002 starts
                conn = await peer.accept(30)
                await conn.handshake(pods=[pod_msg(1), pod_msg(2)], containers=[container_msg(1), container_msg(2)])
                await line_with(missed)
                proc.send_signal(signal.SIGTERM)
                rest = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
                assert await asyncio.wait_for(proc.wait(), 30) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert sum(missed in line for line in [*lines, *rest.splitlines()]) == 1
            assert not any("ctr0001" in line for line in lines)  # known before: nothing to say

    run(main())
