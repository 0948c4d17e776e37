"""The package installs into a fresh virtual environment, its native extension imports and its
optimizer server is a native executable."""

import os
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
         "import nydus_top._native as n, nydus_top.nri.session, nydus_top.commands.record, nydus_top.screens.app,"
         " nydus_top.conf; print(n.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert str(venv) in probe.stdout
    # The command starts Python isolated: PYTHONPATH's sitecustomize.py never runs (issue 18 item 14).
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "sitecustomize.py").write_text(f"open({str(tmp_path / 'sprung')!r}, 'w').close()\n")
    version = subprocess.run([str(venv / "bin/nydus-top"), "--version"], capture_output=True, text=True,
                             cwd=trap, env={**os.environ, "PYTHONPATH": f"{trap}:"})
    assert version.stdout.strip().startswith("nydus-top ")
    assert not (tmp_path / "sprung").exists()
    server = venv / "bin/nydus-top-tracer"  # the optimizer plugin's server_path: no interpreter
    assert server.read_bytes()[:4] == b"\x7fELF" and os.access(server, os.X_OK)
    bad = subprocess.run([str(server)], capture_output=True, env={})  # no _MNTNS_PID
    assert bad.returncode == 2 and bad.stdout == bad.stderr == b""
    # From the checkout (its nydus_top/ has no native extension) the tracer helper still starts
    # from the installed package: it never imports from the working directory.
    helper = subprocess.run(
        [str(venv / "bin/python"), "-I", "-c",
         f"import os; os.chdir({str(src)!r}); from nydus_top.tracing.tracer import TracerPool; "
         "p = TracerPool(); p.warm_up(); p.close(); print('warm')"],
        capture_output=True, text=True, timeout=120,
    )
    assert helper.stdout == "warm\n", helper.stderr[-2000:]


def test_help_lists_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "nydus_top", "--help"], capture_output=True, text=True, check=True)
    assert "usage: nydus-top" in out.stdout
