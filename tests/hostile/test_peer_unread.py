"""Item 6 of issue 9: a runtime peer that stops reading holds neither our memory nor our shutdown.

Limits: session.MAX_WRITE_BUFFER (answers the runtime has not read), session.CLOSE_GRACE (how long
a closing connection may flush). A real ``nydus-top record`` / ``ps --watch`` gets SIGTERM while
such a peer holds answers of theirs and must exit within 2 s (the issue's bound).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

import pytest

from nydus_top.model.node import EventKind
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import session as nri_session
from nydus_top.nri.protocol import PluginProtocol
from testkit.hostile_peer import Served, run
from testkit.runtime_peer import RuntimePeer, container_msg, pod_msg

NYDUS_TOP = Path(sys.executable).parent / "nydus-top"
SHUTDOWN_BOUND = 2.0  # seconds from SIGTERM to exit, whatever the peer does
STOP = api.ContainerRequest(pod=pod_msg(1), container=container_msg(1)).SerializeToString()
ANSWER = len(PluginProtocol().respond(1))  # what each StopContainer adds to our unread answers


@pytest.mark.parametrize("over", [0, 1])
def test_unread_answers_are_bounded_by_max_write_buffer(tmp_path: Path, monkeypatch, caplog, over: int) -> None:
    async def main():
        async with Served(tmp_path) as s:
            stops = asyncio.Queue()
            s.model.subscribe(lambda ev: ev.kind is EventKind.CONTAINER_STOP and stops.put_nowait(None))

            async def stop_calls(n: int) -> None:  # n calls, each answered before its model event
                for _ in range(n):
                    conn.send_call("StopContainer", STOP)
                for _ in range(n):
                    await asyncio.wait_for(stops.get(), 10)

            conn = await s.peer.accept()
            await conn.handshake()
            conn.writer.transport.pause_reading()  # the peer reads nothing from now on
            transport = s.session._writer.transport
            while transport.get_write_buffer_size() == 0:  # until its socket buffer is full
                await stop_calls(50)
            unread = transport.get_write_buffer_size()
            monkeypatch.setattr(nri_session, "MAX_WRITE_BUFFER", unread + 4 * ANSWER - over)
            await stop_calls(3)
            assert transport.get_write_buffer_size() == unread + 3 * ANSWER and not transport.is_closing()
            conn.send_call("StopContainer", STOP)
            if over:
                await asyncio.wait_for(stops.get(), 10)  # answered, over the limit: cut off at once
                assert transport.is_closing() and transport.get_write_buffer_size() == 0
                await s.peer.accept()  # and the session reconnects
            else:
                await asyncio.wait_for(stops.get(), 10)
                assert transport.get_write_buffer_size() == nri_session.MAX_WRITE_BUFFER
                assert not transport.is_closing()

    run(main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if over:
        assert len(lines) == 1 and lines[0].endswith(
            f": {nri_session.MAX_WRITE_BUFFER + 1} bytes of answers not read by the runtime, more than "
            f"{nri_session.MAX_WRITE_BUFFER} (MAX_WRITE_BUFFER); reconnecting")
        assert lines[0].startswith("NRI: dropping the connection to the runtime at ")
    else:
        assert lines == []


def test_stop_does_not_wait_on_a_peer_that_does_not_read(tmp_path: Path) -> None:
    async def main():
        async with Served(tmp_path) as s:
            conn = await s.peer.accept()
            await conn.handshake()
            conn.writer.transport.pause_reading()
            transport = s.session._writer.transport
            for _ in range(5000):
                conn.send_call("UpdateContainer", b"")
            await conn.writer.drain()
            while transport.get_write_buffer_size() == 0:
                conn.send_call("Synchronize", b"")  # answered with a model event: a point to wait for
                synced = asyncio.Event()
                unsubscribe = s.model.subscribe(lambda ev, done=synced: done.set())
                await asyncio.wait_for(synced.wait(), 10)
                unsubscribe()
            s.session.stop()
            await asyncio.wait_for(s.task, 5)  # before: never, the answers could not be sent
            assert transport.is_closing() and transport.get_write_buffer_size() == 0  # aborted

    run(main())


async def _held_answers(peer: RuntimePeer, calls: int = 5000):
    """Register, then stop reading and send ``calls`` calls and a Synchronize: the plugin's
    answers fill its socket buffer and queue in its own. Returns the connection."""
    conn = await peer.accept(30)
    await conn.accept_registration()
    await conn.call("Configure", b"")
    conn.writer.transport.pause_reading()
    for _ in range(calls):
        conn.send_call("UpdateContainer", b"")
    conn.send_call("Synchronize", api.SynchronizeRequest(pods=[pod_msg(1)]).SerializeToString())
    return conn


@pytest.mark.parametrize("command", [["record"], ["ps", "--watch"]])
def test_sigterm_ends_the_command_within_2s_while_the_peer_does_not_read(tmp_path: Path, command: list[str]) -> None:
    sock = tmp_path / "nri.sock"
    args = [str(NYDUS_TOP), *command, "--nri-socket", str(sock)]
    if command[0] == "record":
        args += ["--persist-dir", str(tmp_path / "out")]
    synced = "recording container starts via" if command[0] == "record" else '"event": "sync"'

    async def main():
        async with RuntimePeer(sock) as peer:
            proc = await asyncio.create_subprocess_exec(*args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            try:
                conn = await _held_answers(peer)
                out = proc.stderr if command[0] == "record" else proc.stdout
                while synced not in (line := (await asyncio.wait_for(out.readline(), 30)).decode()):
                    assert line, "the command ended before the sync"
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 30)
                took = time.monotonic() - t0
                assert took < SHUTDOWN_BOUND, f"exit took {took:.2f} s after SIGTERM"
                assert code in (0, -signal.SIGTERM)
                conn.close()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    run(main())
