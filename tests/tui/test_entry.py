"""`nydus-top` without a command: config errors in one line; no runtime yet shows why, live."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable

from nydus_top.screens.run import build_app
from tests.tui.conftest import until
from tests.tui.screentext import screen_text


def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("readable = 'yes'\n")
    out = subprocess.run([sys.executable, "-m", "nydus_top", "--config", str(bad)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"nydus-top: {bad}: ") and "'readable'" in line


async def test_without_a_runtime_the_app_says_so_and_keeps_retrying(tmp_path: Path) -> None:
    socket = tmp_path / "nri.sock"  # nobody listens here
    app = build_app(argparse.Namespace(config=None, nri_socket=str(socket)))
    logger = logging.getLogger("nydus_top")
    try:
        async with app.run_test(size=(160, 10)) as pilot:
            await until(pilot, lambda: "not connected: NRI: cannot use" in screen_text(app), what="the warning")
            assert str(socket) in screen_text(app)
    finally:
        logger.handlers.clear()
        logger.propagate = True


async def test_config_screen_shows_the_socket_in_use_and_who_set_each_key(tmp_path: Path) -> None:
    socket = tmp_path / "given.sock"  # nobody listens: the app keeps retrying, the screen still shows it
    mine = tmp_path / "mine.toml"
    mine.write_text('readable = true\n[nri]\nsocket = "/run/from-file.sock"\n')
    app = build_app(argparse.Namespace(config=str(mine), nri_socket=str(socket)))
    logger = logging.getLogger("nydus_top")
    try:
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.press("C")
            await pilot.pause()
            rows = {row[0]: row[1:] for row in (app.screen.query_one(DataTable).get_row_at(i)
                                                  for i in range(app.screen.query_one(DataTable).row_count))}
            assert {key: tuple(map(str, cells)) for key, cells in rows.items() if key in (
                "nri.socket", "readable", "convert.target")} == {
                "nri.socket": (str(socket), "command line (--nri-socket)"),
                "readable": ("true", str(mine)),
                "convert.target": ("{repo}:{tag}-nydus", "default"),
            }
    finally:
        logger.handlers.clear()
        logger.propagate = True
