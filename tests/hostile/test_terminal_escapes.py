"""Names and paths from containers and runtimes reach the operator's terminal and logs escaped
(issue 9 item 3): no ESC, BEL, other C0/C1 control or bidi override gets through; data files and
JSON documents keep the exact names."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nydus_top.lists.files import save_list
from nydus_top.model.records import ListedFile
from nydus_top.text import EscapingFormatter, printable
from testkit.container import Container, build_progs

# OSC retitle, clear screen, C1 CSI, NEL, right-to-left override, isolate, right-to-left mark,
# line separator, byte-order mark
HOSTILE = "\x1b]0;owned\x07\x1b[2J\u009b31m\u0085\u202egnp.exe\u2066\u200f(1)\u2028\ufeff"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u061c\u200e\u200f\u2028\u2029\ufeff]")


def unsafe(text: str) -> list[str]:
    return UNSAFE.findall(text)


def test_the_pattern_sees_every_hostile_character() -> None:
    assert len(unsafe(HOSTILE)) == 10 and unsafe(printable(HOSTILE)) == []


def test_surrogates_that_encode_to_a_control_or_an_override_are_escaped() -> None:
    # JSON from a registry (an error's message, a pulled list) spells any surrogate: surrogate
    # escapes that re-encode to the bytes of U+009B (CSI) or U+202E were shown as that character;
    # a surrogate outside U+DC80..U+DCFF raised UnicodeEncodeError
    assert printable("x\udcc2\udc9b2J\udce2\udc80\udcaeexe") == "x\\xc2\\x9b2J\\xe2\\x80\\xaeexe"
    assert printable("a\ud800b\udfff\udc1b\udcff") == "a\\ud800b\\udfff\\udc1b\\xff"


CODE_POINTS = (st.integers(0xDC80, 0xDCFF) | st.integers(0xD800, 0xDFFF) | st.integers(0, 0x10FFFF)
               | st.sampled_from([0xC2, 0x9B, 0xE2, 0x80, 0xAE, 0x202E, 0x1B]))


@given(st.lists(CODE_POINTS).map(lambda cps: "".join(map(chr, cps))))
def test_any_text_is_shown_without_a_control_an_override_or_a_surrogate(text: str) -> None:
    shown = printable(text)
    assert unsafe(shown) == [] and "\n" not in shown and "\t" not in shown
    shown.encode("utf-8")  # strict: nothing left that is no character


def test_log_lines_are_escaped_whole() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "recording %s", (f"ns/{HOSTILE}/c",), None)
    line = EscapingFormatter("nydus-top record: %(message)s").format(record)
    assert unsafe(line) == [] and line.startswith("nydus-top record: recording ns/\\x1b]0;owned\\x07")


def test_saved_lists_keep_bytes_and_say_so(tmp_path: Path) -> None:
    path = f"/data/{HOSTILE}"
    result = save_list([ListedFile(path, 1, 1), ListedFile("/ok", 1, 2)], tmp_path / "l")
    assert (tmp_path / "l").read_bytes() == f"{path}\n/ok\n".encode()
    assert len(result.warnings) == 1 and unsafe(result.warnings[0]) == []
    assert result.warnings[0].startswith("kept 1 paths with control characters or bidi overrides byte-exact")


# -- the real commands ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_progs(tmp_path_factory.mktemp("progs"))


def test_trace_output_escapes_bidi_and_controls_and_decodes_exact(tmp_path: Path, progs) -> None:
    name = f"/data/{HOSTILE}"
    c = Container(tmp_path / "c", progs, {name: b"x"},
                  ["signal:{note}", "wait:{go}", f"read:{name}", "signal:{note}", "wait:{go}"])
    try:
        c.wait_note()
        ready_r, ready_w = os.pipe()
        proc = subprocess.Popen([sys.executable, "-I", "-m", "nydus_top", "trace", "--host", "--pid", str(c.pid),
                                 "--ready-fd", str(ready_w)], pass_fds=(ready_w,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(ready_w)
        assert os.read(ready_r, 5)[:1] == b"R"
        os.close(ready_r)
        c.go()
        c.wait_note()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        c.finish()
    text = out.decode("utf-8")
    assert unsafe(text) == [] and "\\u202e" in text and "\\u001b" in text
    assert name in [json.loads(line)["path"] for line in text.splitlines()]
    assert unsafe(err.decode("utf-8", "replace")) == []


def test_ps_and_record_escape_names_from_the_runtime(sandbox_node, tmp_path: Path) -> None:
    from testkit.harness import start_recorder

    rec = start_recorder(sandbox_node.nri_socket, tmp_path / "persist")
    try:
        # CRI takes any bytes in these names; containerd reports them over NRI as they are.
        started = sandbox_node.run_demo(name=f"x{HOSTILE}", namespace=f"ns{HOSTILE}")
        try:
            ps = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "ps", "--nri-socket",
                                 str(sandbox_node.nri_socket)], capture_output=True, timeout=60)
            as_json = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "ps", "--json", "--nri-socket",
                                      str(sandbox_node.nri_socket)], capture_output=True, timeout=60)
        finally:
            sandbox_node.cri.remove_pod(started.pod_id)
        saved = rec.log.wait_for(f"saved {tmp_path / 'persist'}", 20, rec.log.wait_for("recording ns", 20) + 1)
    finally:
        rec.stop()
    table = ps.stdout.decode()
    assert ps.returncode == 0 and f"ns{printable(HOSTILE)}" in table and unsafe(table) == []
    listing = json.loads(as_json.stdout)
    assert f"x{HOSTILE}" in [c["name"] for c in listing["containers"]]  # exact in JSON
    assert unsafe(as_json.stdout.decode()) == []  # and escaped there too (\u001b)
    log = "\n".join(line for line in rec.log.lines if line != "\0EOF")
    assert "saved" in rec.log.lines[saved] and f"ns{printable(HOSTILE)}/x{printable(HOSTILE)}" in log
    assert unsafe(log) == []


def test_the_app_status_line_shows_paths_and_errors_escaped(tmp_path: Path) -> None:
    import asyncio

    from testkit.replay_data import make_backend
    from tests.tui.conftest import on_trace, settle, submit

    async def save_under_a_file() -> str:
        blocker = tmp_path / f"file{HOSTILE}"
        blocker.write_text("x")
        async with on_trace(make_backend(tmp_path)) as (app, pilot, screen):
            await pilot.press("s")
            await submit(pilot, str(blocker / "list"))
            await settle(pilot)
            return str(screen.query_one("#status").render())

    status = asyncio.run(save_under_a_file())
    assert "cannot save" in status and printable(HOSTILE) in status and unsafe(status) == []


def test_message_dialogs_show_file_names_escaped(tmp_path: Path) -> None:
    """A list's file name is a tenant's choice: its load warnings and the dialog's title name it."""
    import asyncio

    from nydus_top.screens.dialogs import MessageDialog
    from tests.tui.conftest import running, settle, until

    hostile = tmp_path / f"list{HOSTILE}"
    hostile.write_text("/bin/app\nrelative\n")

    async def load() -> str:
        async with running() as (app, pilot):
            app.load_run(str(hostile))
            await until(pilot, lambda: isinstance(app.screen, MessageDialog), what="the warnings dialog")
            await settle(pilot)
            return "\n".join(strip.text for widget in app.screen.query("Label, Static")
                             for strip in widget.render_lines(widget.region.reset_offset))

    shown = asyncio.run(load())
    assert "skipped 'relative'" in shown and printable(HOSTILE)[:20] in shown and unsafe(shown) == []


def test_the_convert_screen_shows_nydusify_output_escaped(tmp_path: Path) -> None:
    """nydusify echoes what registries answer: its lines reach the app's log escaped, as in the CLI."""
    import asyncio

    from nydus_top.screens.convert import ConvertScreen
    from testkit.replay_data import make_backend
    from tests.tui.conftest import on_trace, submit, until

    tool = tmp_path / "nydusify"
    (tmp_path / "answer").write_text(f"level=fatal msg={HOSTILE}\n")
    tool.write_text(f"#!/bin/sh\ncat >/dev/null\ncat {tmp_path / 'answer'} >&2\nexit 1\n")
    tool.chmod(0o755)

    async def convert() -> str:
        async with on_trace(make_backend(tmp_path, nydusify=str(tool))) as (app, pilot, _):
            await pilot.press("c")
            await submit(pilot, "registry.local/app:1")
            screen = app.screen
            assert isinstance(screen, ConvertScreen)
            await until(pilot, lambda: screen.finished, what="the stand-in to finish")
            log = screen.query_one("Log")
            return "\n".join([*log.lines, str(screen.query_one("#status").render())])

    shown = asyncio.run(convert())
    assert f"level=fatal msg={printable(HOSTILE)}" in shown and unsafe(shown) == []
