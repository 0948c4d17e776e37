"""A list's identity file may come from a registry (pulled runs): JSON nested too deep for the
parser is one warning, like any other unusable metadata, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import load_list


def test_metadata_nested_too_deep_is_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.write_bytes(b"/bin/app\n")
    Path(f"{run}.nydus-top.json").write_bytes(b"[" * 50_000 + b"]" * 50_000)
    loaded = load_list(run)
    assert loaded.meta is None and [e.path for e in loaded.entries] == ["/bin/app"]
    assert loaded.warnings == (f"{run}.nydus-top.json: not JSON (nested too deep) (list identity unknown)",)
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{tmp_path / "persist"}"\n')
    assert main(["--config", str(config), "consensus", str(run)]) == 0
    out = capsys.readouterr()
    assert "nested too deep" in out.err and "/bin/app" in out.out
