"""``nydus-top ps`` failure paths: one clear line on stderr, exit status 1, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nydus_top.nri import nri_api_pb2 as api
from testkit.runtime_peer import RuntimePeer, container_msg, pod_msg


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


def test_containerds_api_socket_is_named_as_not_nri(sandbox_node) -> None:
    rc, out, err = asyncio.run(ps("--nri-socket", str(sandbox_node.containerd_socket)))
    assert (rc, out) == (1, "")
    assert err == (f"nydus-top ps: cannot list from NRI at {sandbox_node.containerd_socket}: "
                   "this is not an NRI socket (is it containerd's API socket?)\n")


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


def test_table_rows_per_container_and_per_empty_pod(tmp_path: Path) -> None:
    from nydus_top.commands.ps import table
    from nydus_top.nri import to_model

    now = 1_700_000_000
    pods = {p.id: p for p in (to_model.pod(pod_msg(1)), to_model.pod(pod_msg(2, pid=0)))}
    ctrs = {c.id: c for c in (to_model.container(container_msg(1, started_at=(now - 754) * 10**9)),
                              to_model.container(container_msg(3, pod=9)))}
    rows = [line.split() for line in table(pods, ctrs, now=now, proc=str(tmp_path)).splitlines()]  # no processes
    assert rows == [
        ["NAMESPACE", "POD", "CONTAINER", "STATE", "AGE", "PID", "IMAGE", "ID"],
        ["?", "?", "c-3", "running", "-", "2003", "registry/app:3", "ctr0003"],
        ["ns", "pod-1", "c-1", "running", "12m", "2001", "registry/app:1", "ctr0001"],
        ["ns", "pod-2", "-", "pod", "notready", "-", "-", "-", "pod0002"],
    ]


def test_a_process_start_time_is_the_kernels() -> None:
    from nydus_top.commands.ps import process_started

    before = time.time()
    child = subprocess.Popen(["sleep", "60"])
    try:
        started = process_started(child.pid)
        assert started is not None and before - 1 <= started <= time.time() + 1  # boot time has 1 s steps
    finally:
        child.kill()
        child.wait()
    assert process_started(child.pid) is None and process_started(0) is None


def test_age_is_in_the_largest_unit_that_reads_at_a_glance() -> None:
    from nydus_top.commands.ps import age

    assert [age(s) for s in (None, -3, 0, 119.9, 120, 7199, 7200, 48 * 3600 - 1, 48 * 3600, 10 * 86400)] == [
        "-", "0s", "0s", "119s", "2m", "119m", "2h", "47h", "2d", "10d"]


@contextlib.asynccontextmanager
async def watch_into_pipe(peer: RuntimePeer):
    """``nydus-top ps --watch`` writing to a pipe; yields (process, the pipe's read fd)."""
    r, w = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nydus_top", "ps", "--watch", "--nri-socket", str(peer.path),
        stdout=w, stderr=asyncio.subprocess.PIPE)
    os.close(w)
    try:
        yield proc, r
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_watch_ends_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer, watch_into_pipe(peer) as (proc, r):
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

    code, rc, err = asyncio.run(main())
    assert (code, rc, err) == (0, 0, "")


def test_watch_with_a_stalled_reader_still_answers_containerd_and_loses_nothing(tmp_path: Path) -> None:
    pods = [pod_msg(i) for i in range(2000)]  # the sync line alone overfills the 64 KiB pipe

    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer, watch_into_pipe(peer) as (proc, r):
            conn = await peer.accept()
            await conn.handshake(pods=pods)  # nobody reads the pipe yet
            for i in range(2000, 2005):
                payload = api.StateChangeEvent(event=api.RUN_POD_SANDBOX, pod=pod_msg(i)).SerializeToString()
                answer = await conn.call("StateChange", payload, timeout=2.0)  # containerd's timeout
                assert answer.code == 0
            with os.fdopen(r) as reader:
                lines = [json.loads(await asyncio.to_thread(reader.readline)) for _ in range(6)]
                proc.send_signal(signal.SIGINT)
                assert await asyncio.wait_for(proc.wait(), 10) == 130
            return lines

    lines = asyncio.run(main())
    assert [ln["event"] for ln in lines] == ["sync"] + ["pod-run"] * 5
    assert len(lines[0]["pods"]) == 2000
    assert [ln["pod"]["id"] for ln in lines[1:]] == [f"pod{i:04d}" for i in range(2000, 2005)]


def test_socket_name_and_index_come_from_the_config(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer:
            config = tmp_path / "config.toml"
            config.write_text(f'[nri]\nsocket = "{peer.path}"\nplugin_name = "ps-probe"\nplugin_index = "42"\n')
            task = asyncio.ensure_future(ps("--json", "--config", str(config)))
            conn = await peer.accept()
            reg = await conn.accept_registration()
            await conn.call("Configure", b"")
            await conn.call("Synchronize", api.SynchronizeRequest(pods=[pod_msg(1)]).SerializeToString())
            return (reg.plugin_name, reg.plugin_idx), await task

    registered, (rc, out, err) = asyncio.run(main())
    assert registered == ("ps-probe", "42")
    assert rc == 0, err
    assert [p["id"] for p in json.loads(out)["pods"]] == ["pod0001"]


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[nri]\nplugin_index = "9"\n')
    rc, out, err = asyncio.run(ps("--config", str(config)))
    assert (rc, out) == (2, "")
    assert err == f"nydus-top ps: {config}: key 'nri.plugin_index' must be a two-digit string like \"90\", got '9'\n"


def test_watch_ends_on_ctrl_c_without_a_disconnected_line(tmp_path: Path) -> None:
    async def main():
        async with RuntimePeer(tmp_path / "nri.sock") as peer, watch_into_pipe(peer) as (proc, r):
            conn = await peer.accept()
            await conn.handshake(pods=[pod_msg(1)])
            with os.fdopen(r) as reader:
                first = json.loads(await asyncio.to_thread(reader.readline))
                proc.send_signal(signal.SIGINT)
                rest = await asyncio.to_thread(reader.read)  # everything until ps closes stdout
            err = await asyncio.wait_for(proc.stderr.read(), 10)
            return first["event"], rest, await asyncio.wait_for(proc.wait(), 10), err.decode()

    assert asyncio.run(main()) == ("sync", "", 130, "")
