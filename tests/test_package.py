"""The package installs into a fresh virtual environment and its native extension imports."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fresh_venv_installs_and_imports_native(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "_native.*", "*_pb2.py*",
                                      "__pycache__", ".sandbox", ".cache", ".pytest_cache", ".hypothesis"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True, text=True,
    )
    assert pip.returncode == 0, pip.stderr[-4000:]
    probe = subprocess.run(
        [str(venv / "bin/python"), "-c",
         "import nydus_top._native as n, nydus_top.nri.session, nydus_top.commands.record, nydus_top.screens.app, nydus_top.conf; print(n.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert str(venv) in probe.stdout
    version = subprocess.run([str(venv / "bin/nydus-top"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("nydus-top ")


def test_help_lists_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "nydus_top", "--help"], capture_output=True, text=True, check=True)
    assert "usage: nydus-top" in out.stdout
