"""Every bench still runs: ``--help`` and ``--quick`` (tiny sizes, no targets) of each bench/*.py.

A bench is only run by hand, so a moved module or a changed signature used to break one silently
(``bench/record_memory.py`` failed on a new ``Recording`` argument). Run from an unrelated
directory with an isolated interpreter, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted(p.name for p in (ROOT / "bench").glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def run(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=850, stdin=subprocess.DEVNULL)


def test_every_bench_is_found() -> None:
    assert len(BENCHES) >= 14
    assert "benchkit.py" not in BENCHES


@pytest.mark.parametrize("name", BENCHES)
def test_bench_help(name: str, tmp_path: Path) -> None:
    done = run(name, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


@pytest.mark.timeout(900)  # a few start a sandbox node and build the recorder's image
@pytest.mark.parametrize("name", BENCHES)
def test_bench_quick(name: str, tmp_path: Path) -> None:
    done = run(name, "--quick", cwd=tmp_path)
    assert done.returncode == 0, f"{name} --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{name} --quick printed nothing"
