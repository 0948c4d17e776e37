"""Containers, Trace, Stability and Diff on small terminals (80x24, 100x30): the path keeps its
room as the terminal narrows (other columns hide first), and the detail line under the list
shows the selected row's path whole. Update after an intended change with ``--snapshot-update``
and look at the SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.screens.app import NydusTopApp
from testkit.replay_data import make_backend
from tests.tui.test_snapshots import keys
from tests.tui.test_snapshots_runs import _keep_runs, _stability, diff_setup

SIZES = [(80, 24), (100, 30)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", ["containers", "trace", "stability", "diff"])
def test_small_terminal(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, screen: str,
                        size: tuple[int, int]) -> None:
    monkeypatch.chdir(tmp_path)
    if screen == "containers":
        run_before = keys()
    elif screen == "trace":
        run_before = keys("enter", "home", "down", "down")
    elif screen == "stability":
        _keep_runs(tmp_path)
        run_before = _stability("down")
    else:
        run_before = diff_setup()
    assert snap_compare(NydusTopApp(make_backend(tmp_path)), run_before=run_before, terminal_size=size)
