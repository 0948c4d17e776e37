"""Two recorders on one persist_dir would record every start twice (issue 18 item 16): the second
says so in one line and refuses; the lock goes with its holder, and is never a symlink followed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nydus_top.recording.lock import LOCK_NAME


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


def test_a_symlink_as_the_lock_file_is_never_followed(tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    persist.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    os.symlink(victim, persist / LOCK_NAME)
    proc = _record(tmp_path, persist)
    _, err = _finish(proc)
    assert proc.returncode == 1
    assert err.decode() == (f"nydus-top record: cannot lock {persist / LOCK_NAME}: a symlink (never followed)\n")
    assert victim.read_text() == "keep\n"
