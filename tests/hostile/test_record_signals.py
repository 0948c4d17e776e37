"""``nydus-top record`` and SIGHUP: never a silent loss of the recordings in progress.

Logging to stderr, a hang-up means the terminal is gone: the recorder stops like on SIGTERM,
saving what it recorded. Logging to a file, SIGHUP is logrotate's "reopen your log": the
recorder goes on, recordings and all, and logs into the new file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from testkit import workload
from testkit.harness import start_recorder, wait_in_file

RESULT = "startup-workload:1"
EXPECTED = [workload.ENTRYPOINT, *workload.STARTUP_FILES]


def _run_staying(cri, pod: str, name: str, image: str) -> str:
    cid = cri.create_container(pod, name, image, command=workload.command("stay"))
    cri.start_container(cid)
    return cid


def test_sighup_on_a_terminal_saves_the_recordings_and_says_so(sandbox_node, workload_image, pod, persist) -> None:
    rec = start_recorder(sandbox_node.nri_socket, persist)
    try:
        cid = _run_staying(sandbox_node.cri, pod, "hup", workload_image)
        sandbox_node.wait_for_log(cid, workload.DONE_LINE)
        rec.proc.send_signal(signal.SIGHUP)
        assert rec.proc.wait(10) == 0
    finally:
        rec.stop()
    rec.log.wait_for("SIGHUP: stopping; saving 1 recording in progress", 1)
    rec.log.wait_for(f"saved {persist / RESULT} ({len(EXPECTED)} files, shutdown) for record/record-test/hup", 1)
    assert (persist / RESULT).read_text().splitlines() == EXPECTED


def test_sighup_with_a_log_file_reopens_it_and_recording_goes_on(sandbox_node, workload_image, pod, persist,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "record.log"
    cmd = [sys.executable, "-m", "nydus_top", "record", "--nri-socket", str(sandbox_node.nri_socket),
           "--persist-dir", str(persist), "--log", str(log)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_in_file(log, "recording container starts", timeout=20)
        cid = _run_staying(sandbox_node.cri, pod, "rotated", workload_image)
        sandbox_node.wait_for_log(cid, workload.DONE_LINE)
        wait_in_file(log, f"recording record/record-test/rotated ({cid[:12]})")
        log.rename(tmp_path / "record.log.1")  # logrotate moves the file, then sends SIGHUP
        proc.send_signal(signal.SIGHUP)
        wait_in_file(log, f"SIGHUP: log file {log} reopened")
        assert proc.poll() is None
        sandbox_node.cri.stop_container(cid)
        # "StopContainer" or "container exited": whichever of the two events comes first.
        line = wait_in_file(log, f"saved {persist / RESULT} ({len(EXPECTED)} files, ")
        assert "record/record-test/rotated" in line
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert (persist / RESULT).read_text().splitlines() == EXPECTED
    assert "saved" not in (tmp_path / "record.log.1").read_text()
