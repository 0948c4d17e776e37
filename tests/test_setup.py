"""scripts/setup puts nydus-top on PATH (a link in $NYDUS_TOP_BINDIR, /usr/local/bin by default)
and takes it away on request, never replacing what is not its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = str(ROOT / ".venv" / "bin" / "nydus-top")


def setup(bindir: Path, *args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / "setup"), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NYDUS_TOP_BINDIR": str(bindir)})
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_links_nydus_top_onto_path_and_unlinks_on_request(tmp_path: Path) -> None:
    link = tmp_path / "nydus-top"
    assert f"linked {link} -> {OURS}" in setup(tmp_path)
    assert os.readlink(link) == OURS
    assert "linked" not in setup(tmp_path)  # idempotent
    assert subprocess.run([str(link), "--version"], capture_output=True, text=True).stdout.startswith("nydus-top ")
    assert f"removed {link}" in setup(tmp_path, "--unlink")
    assert not link.exists() and not link.is_symlink()


def test_never_replaces_what_is_not_its_own(tmp_path: Path) -> None:
    link = tmp_path / "nydus-top"
    link.write_text("#!/bin/sh\n")
    assert "left alone" in setup(tmp_path) and "left alone" in setup(tmp_path, "--unlink")
    assert link.read_text() == "#!/bin/sh\n"
    link.unlink()
    link.symlink_to("/elsewhere/.venv/bin/nydus-top")  # another checkout's
    assert "left alone" in setup(tmp_path)
    assert os.readlink(link) == "/elsewhere/.venv/bin/nydus-top"
    setup(tmp_path, "--link")
    assert os.readlink(link) == OURS


def test_run_says_again_after_the_app_which_nydus_top_is_on_path(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "nydus-top"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    link = tmp_path / "nydus-top"
    link.symlink_to(other)  # another checkout's: setup leaves it alone
    done = subprocess.run([str(ROOT / "scripts" / "run"), "--nri-socket", str(tmp_path / "nri.sock"), "--version"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "NYDUS_TOP_BINDIR": str(tmp_path),
                               "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode == 0 and done.stdout.startswith("nydus-top "), done.stderr
    lines = done.stderr.splitlines()
    assert sum("left alone" in line for line in lines) == 2  # from setup, and again after the app
    assert "left alone" in lines[-2]
    assert lines[-1] == (f"run: nydus-top on PATH is {link}, not this checkout's: run {OURS} "
                         "(or scripts/setup --link)")


def test_a_venv_left_half_made_is_made_again(tmp_path: Path) -> None:
    # An interrupted setup (killed while `python3 -m venv` installed pip) left .venv without pip,
    # and every later setup failed on "No module named pip".
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "_native.*", "*_pb2.py*", "__pycache__", ".sandbox", ".cache",
        ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(src / ".venv")], check=True)
    done = subprocess.run([str(src / "scripts" / "setup")], capture_output=True, text=True, timeout=900, cwd="/",
                          env={**os.environ, "NYDUS_TOP_BINDIR": str(tmp_path / "bin")}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = subprocess.run([str(src / ".venv" / "bin" / "python"), "-I", "-c", "import nydus_top._native, pip"],
                           capture_output=True, text=True, cwd="/")
    assert probe.returncode == 0, probe.stderr
