"""scripts/setup puts nydus-top on PATH (a link in $NYDUS_TOP_BINDIR, /usr/local/bin by default)
and takes it away on request, never replacing what is not its own."""

from __future__ import annotations

import os
import subprocess
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
