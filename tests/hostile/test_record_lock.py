"""Two recorders on one persist_dir would record every start twice (issue 18 item 16): the second
says so in one line and refuses; the lock goes with its holder, and is never a symlink followed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.nri import nri_api_pb2 as api
from nydus_top.recording.lock import LOCK_NAME, OURS
from testkit.harness import LineLog
from testkit.runtime_peer import RuntimePeer


def _record(tmp_path: Path, persist: Path) -> subprocess.Popen[bytes]:
    # No containerd: record takes its lock, warms its tracer helper, then keeps retrying the socket.
    return subprocess.Popen([sys.executable, "-I", "-m", "nydus_top", "record", "--nri-socket",
                             str(tmp_path / "absent.sock"), "--persist-dir", str(persist)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Its output once it exits by itself; killed (and the test failed) if it does not."""
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def _running(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"retrying" in line, line


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_a_second_recorder_on_one_persist_dir_refuses(tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    first = _record(tmp_path, persist)
    try:
        _running(first)
        second = _record(tmp_path, persist)
        _, err = _finish(second)
        assert second.returncode == 1
        assert err.decode() == (f"nydus-top record: another recorder (pid {first.pid}) already records into "
                                f"{persist}: refusing to record every start twice\n")
        other = _record(tmp_path, tmp_path / "other")  # another directory: no conflict
        _running(other)
        _stop(other)
    finally:
        _stop(first)
    third = _record(tmp_path, persist)  # the lock went with its holder
    _running(third)
    _stop(third)


@pytest.mark.parametrize("planted", ["file", "directory"])
def test_a_symlink_on_the_way_to_the_lock_file_is_never_followed(tmp_path: Path, planted: str) -> None:
    persist = tmp_path / "persist"
    (persist / OURS).mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / LOCK_NAME).write_text("keep\n")
    lock = persist / OURS / LOCK_NAME
    if planted == "file":
        os.symlink(victim / LOCK_NAME, lock)
        why = "a symlink (never followed)"
    else:
        (persist / OURS).rmdir()
        os.symlink(victim, persist / OURS)
        why = f"{persist / OURS} is a symlink (never followed under {persist})"
    proc = _record(tmp_path, persist)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert line == f"nydus-top record: cannot lock {lock}: {why}; recording without the lock\n"
        _running(proc)  # its saves would meet the same symlink and fail, each with its line
    finally:
        _stop(proc)
    assert (victim / LOCK_NAME).read_text() == "keep\n"


def test_an_nri_configure_into_a_held_persist_dir_keeps_the_previous_settings(tmp_path: Path) -> None:
    # containerd's configuration text (Configure) can move the recorder to another persist_dir:
    # the lock moves along, and one held by another recorder is refused in one line.
    taken = tmp_path / "taken"
    first = _record(tmp_path, taken)
    sock = tmp_path / "nri.sock"
    try:
        _running(first)

        async def main() -> None:
            async with RuntimePeer(sock) as peer:
                proc = subprocess.Popen([sys.executable, "-I", "-m", "nydus_top", "record", "--nri-socket", str(sock),
                                         "--persist-dir", str(tmp_path / "mine")],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                log = LineLog(proc.stderr)
                try:
                    conn = await peer.accept(60)
                    await conn.accept_registration()
                    text = f'persist_dir = "{taken}"\n'
                    conf = await conn.call("Configure", api.ConfigureRequest(config=text, runtime_name="peer")
                                           .SerializeToString(), timeout=60)
                    assert conf.code == 0
                    await asyncio.to_thread(log.wait_for, "keeping the previous settings", 60)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    assert await asyncio.to_thread(proc.wait, 60) == 0
                refused = [line for line in log.lines if "keeping the previous settings" in line]
                assert refused == [f"nydus-top record: another recorder (pid {first.pid}) already records into "
                                   f"{taken}: refusing to record every start twice; keeping the previous settings"]
                assert (tmp_path / "mine" / OURS / LOCK_NAME).is_file()

        asyncio.run(main())
    finally:
        _stop(first)


@pytest.mark.parametrize("configured", [True, False])
def test_launched_by_the_runtime_it_locks_at_configure_and_refuses_a_held_dir(tmp_path: Path, configured: bool) -> None:
    # Launched by containerd (the socket fd in NRI_PLUGIN_SOCKET) the persist_dir is settled at NRI
    # Configure: the command line's directory is not even made before, and one held by another
    # recorder ends this one with one line and status 1.
    taken, flag_dir = tmp_path / "taken", tmp_path / "flag"
    first = _record(tmp_path, taken)
    sock = tmp_path / "nri.sock"
    try:
        _running(first)

        async def main() -> None:
            async with RuntimePeer(sock) as peer:
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(str(sock))
                argv = [sys.executable, "-I", "-m", "nydus_top", "record", "--persist-dir",
                        str(flag_dir if configured else taken), "--log", str(tmp_path / "launched.log")]
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, pass_fds=(client.fileno(),),
                                        env={**os.environ, "NRI_PLUGIN_SOCKET": str(client.fileno())})
                client.close()
                try:
                    conn = await peer.accept(60)
                    await conn.accept_registration()
                    assert not flag_dir.exists()
                    text = f'persist_dir = "{taken}"\n' if configured else ""
                    conn.send_call("Configure", api.ConfigureRequest(config=text, runtime_name="peer")
                                         .SerializeToString())
                    assert await asyncio.to_thread(proc.wait, 60) == 1
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
        asyncio.run(main())
    finally:
        _stop(first)
    lines = (tmp_path / "launched.log").read_text().splitlines()
    held = f"another recorder (pid {first.pid}) already records into {taken}: refusing to record every start twice"
    assert [line.partition(" nydus-top record: ")[2] for line in lines if "another recorder" in line] == [held]
    assert not flag_dir.exists()
