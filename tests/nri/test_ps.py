"""``nydus-top ps`` failure paths: one clear line on stderr, exit status 1, nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from nydus_top.nri import nri_api_pb2 as api
from tests.nri.runtime_peer import RuntimePeer, container_msg, pod_msg


async def ps(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "nydus_top", "ps", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    return proc.returncode, out.decode(), err.decode()


def test_missing_socket_is_one_line_with_a_hint(tmp_path: Path) -> None:
    rc, out, err = asyncio.run(ps("--nri-socket", str(tmp_path / "none.sock")))
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and "No such file" in err and "disable_connections" in err


def test_protocol_error_during_listing_is_one_line(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer:
            task = asyncio.ensure_future(ps("--nri-socket", str(peer.path)))
            conn = await peer.accept()
            await conn.accept_registration()
            conn.send_call("Synchronize", b"\x0a\xff\xff")  # truncated pods field
            return await task

    rc, out, err = asyncio.run(main())
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and "malformed SynchronizeRequest" in err


def test_json_listing_from_a_chunked_sync(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer:
            task = asyncio.ensure_future(ps("--json", "--nri-socket", str(peer.path)))
            conn = await peer.accept()
            await conn.accept_registration()
            await conn.call("Configure", b"")
            first = api.SynchronizeRequest(pods=[pod_msg(1)], more=True)
            await conn.call("Synchronize", first.SerializeToString())
            last = api.SynchronizeRequest(containers=[container_msg(1), container_msg(2, pod=7)])
            await conn.call("Synchronize", last.SerializeToString())
            return await task

    rc, out, err = asyncio.run(main())
    assert rc == 0, err
    listing = json.loads(out)
    assert [p["id"] for p in listing["pods"]] == ["pod0001"]
    assert [(c["id"], c["state"], c["image"]) for c in listing["containers"]] == [
        ("ctr0001", "running", "registry/app:1"), ("ctr0002", "running", "registry/app:2")]


def test_table_rows_per_container_and_per_empty_pod() -> None:
    from nydus_top.nri import convert
    from nydus_top.ps import table

    pods = {p.id: p for p in (convert.pod(pod_msg(1)), convert.pod(pod_msg(2, pid=0)))}
    ctrs = {c.id: c for c in (convert.container(container_msg(1)), convert.container(container_msg(3, pod=9)))}
    rows = [line.split() for line in table(pods, ctrs).splitlines()]
    assert rows == [
        ["NAMESPACE", "POD", "CONTAINER", "STATE", "PID", "IMAGE", "ID"],
        ["?", "?", "c-3", "running", "2003", "registry/app:3", "ctr0003"],
        ["ns", "pod-1", "c-1", "running", "2001", "registry/app:1", "ctr0001"],
        ["ns", "pod-2", "-", "pod", "notready", "-", "-", "pod0002"],
    ]


def test_watch_ends_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer:
            r, w = os.pipe()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nydus_top", "ps", "--watch", "--nri-socket", str(peer.path),
                stdout=w, stderr=asyncio.subprocess.PIPE)
            os.close(w)
            try:
                conn = await peer.accept()
                await conn.handshake(pods=[pod_msg(1)])
                with os.fdopen(r) as reader:  # like `| head -1`: one line, then gone
                    first = json.loads(await asyncio.to_thread(reader.readline))
                assert first["event"] == "sync" and [p["id"] for p in first["pods"]] == ["pod0001"]
                payload = api.StateChangeEvent(event=api.RUN_POD_SANDBOX, pod=pod_msg(2)).SerializeToString()
                answer = await conn.call("StateChange", payload)  # answered even as ps stops
                assert await conn.closed()
                err = await asyncio.wait_for(proc.stderr.read(), 10)
                return answer.code, await asyncio.wait_for(proc.wait(), 10), err.decode()
            finally:
                if proc.returncode is None:
                    proc.kill()

    code, rc, err = asyncio.run(main())
    assert (code, rc, err) == (0, 0, "")
