"""The JSON line protocol: escaping of hostile bytes, parsing, and the two executables that speak
it (``nydus-top-tracer``, native, as the optimizer plugin's server_path, and ``nydus-top trace``)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nydus_top._native import ffi, lib
from nydus_top.model.records import Access, Overflow
from nydus_top.text import printable
from nydus_top.tracing.tracer import parse_line

VENV_BIN = Path(sys.executable).parent


def escape(data: bytes) -> str:
    out = ffi.new("char[]", 6 * len(data) + 1)
    n = lib.nt_json_escape(data, len(data), out)
    return ffi.buffer(out, n)[:].decode("utf-8")


TRICKY_PIECES = [b"\x1b", b"\x7f", b"\xc2\x9b", b"\xc2\x85", b"\xc2\xa0", b"\xc3", b"a", b"\xe2\x80\xae",
                 b"\xe2\x80\xaa", b"\xe2\x81\xa6", b"\xe2\x81\xa9", b"\xe2\x80\xaf", b"\xe2\x80\xa9", b"\xed\xa0\x80",
                 b"\xd8\x9c", b"\xe2\x80\x8e", b"\xe2\x80\x8f", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xe2\x80\x8d"]


@given(st.binary(max_size=64) | st.lists(st.sampled_from(TRICKY_PIECES)).map(b"".join))
def test_any_bytes_escape_to_json_that_gives_them_back(data: bytes) -> None:
    text = escape(data)
    assert printable(text) == text  # safe on a terminal: no control character, no bidi override
    assert os.fsencode(json.loads(f'"{text}"')) == data


@given(st.text(max_size=32))
def test_valid_utf8_text_decodes_unchanged(s: str) -> None:
    data = s.encode("utf-8", "surrogatepass")
    assert json.loads(f'"{escape(data)}"').encode("utf-8", "surrogateescape") == data


def test_bidi_overrides_are_escaped_and_decode_back() -> None:
    data = "/data/\u202egnp.exe \u2066x\u2069".encode()
    assert escape(data) == "/data/\\u202egnp.exe \\u2066x\\u2069"
    assert json.loads(f'"{escape(data)}"').encode() == data


def test_bidi_marks_separators_and_the_byte_order_mark_are_escaped_as_printable_escapes_them() -> None:
    text = "\u061c\u200e\u200f\u2028\u2029\ufeff\u200d"  # the last (zero width joiner) is kept
    assert escape(text.encode()) == printable(text) == "\\u061c\\u200e\\u200f\\u2028\\u2029\\ufeff\u200d"


def escaped_as_python_decodes(data: bytes) -> str:
    """What nt_json_escape gives for *data*: Python's surrogateescape decoding, each character
    printable escapes as \\uXXXX, each undecodable byte as \\udcXX, quote and backslash escaped."""
    text = data.decode("utf-8", "surrogateescape")
    table = {ord(c): f"\\u{ord(c):04x}" for c in set(text) if printable(c) != c} | {ord('"'): '\\"', ord("\\"): "\\\\"}
    return text.translate(table)


def test_the_json_escaping_escapes_exactly_what_printable_escapes() -> None:
    # every Unicode scalar value at once: each one escaped by the tracer's JSON if and only if
    # printable escapes it (quote and backslash aside, which JSON escapes for itself)
    data = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF).encode()
    assert escape(data) == escaped_as_python_decodes(data)


def test_every_lead_byte_with_every_next_byte_is_decoded_as_python_decodes_it() -> None:
    # overlongs, surrogates, past U+10FFFF, cut and stray sequences: each undecodable byte alone
    edges = (0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    data = b"/".join(bytes([lead, second, third, fourth]) for lead in range(0x80, 0x100) for second in range(0x100)
                     for third in edges for fourth in (0x80, 0xBF, 0x2F))
    assert escape(data) == escaped_as_python_decodes(data)


def test_a_sequence_cut_at_the_end_is_not_completed_from_beyond_it() -> None:
    whole = ffi.new("char[]", "\u202e\u0085".encode())  # in memory whole; only its first bytes given
    for n, expected in ((1, b"\\udce2"), (2, b"\\udce2\\udc80"), (4, b"\\u202e\\udcc2")):
        out = ffi.new("char[]", 6 * n)
        assert ffi.buffer(out, lib.nt_json_escape(whole, n, out))[:] == expected


def test_parse_line() -> None:
    line = b'{"path":"/a b","size":3,"elapsed":7,"kind":"exec","pid":9,"comm":"sh","seq":0}'
    assert parse_line(line) == Access(0, "/a b", 3, 7, "exec", 9, "sh")
    assert parse_line('{"path":"","size":0,"elapsed":5,"kind":"overflow","reason":"queue"}') == Overflow(5)
    for bad in (b"[]", b'{"path":"/x","kind":"open"}', b'{"kind":"bogus","seq":1}', b"nope"):
        with pytest.raises(ValueError):
            parse_line(bad)


def go_and_collect(proc: subprocess.Popen, ready_r: int, c, stop_sig: int) -> tuple[list[dict], bytes]:
    assert select.select([ready_r], [], [], 10)[0], "no ready signal"
    assert os.read(ready_r, 5)[:1] == b"R"
    c.go()
    c.wait_note()
    os.killpg(proc.pid, stop_sig)
    out, err = proc.communicate(timeout=10)
    assert out.endswith(b"\n") and proc.returncode == 0
    return [json.loads(line) for line in out.splitlines()], err


def test_optimizer_server_protocol(container) -> None:
    c = container({"/data/a": b"a", "/data/new\nline": b"n", os.fsdecode(b"/data/\xffx"): b"x",
                   "/data/huge": 5 << 30},
                  ["signal:{note}", "wait:{go}", "read:/data/a", "read:/data/new\nline",
                   "read:" + os.fsdecode(b"/data/\xffx"), "open:/data/huge", "signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    # Exactly how the optimizer plugin starts it: no PATH, only these variables, own group.
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(ready_w,), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    lines, err = go_and_collect(proc, ready_r, c, signal.SIGTERM)
    os.close(ready_r)
    assert err == b""
    # The plugin decodes each line into {path string, size uint32, elapsed uint64}.
    for obj in lines:
        assert isinstance(obj["path"], str) and isinstance(obj["elapsed"], int)
        assert 0 <= obj["size"] < 2**32
    files = [(o["path"], o["size"]) for o in lines if o.get("kind") != "overflow"]
    assert files == [("/data/a", 1), ("/data/\udcffx", 1), ("/data/huge", 2**32 - 1)]  # no CR/LF paths...
    # ...but a line says one was left out (after its batch's files: where depends on how the
    # kernel's events were batched, so not its position)
    (overflow,) = [o for o in lines if o.get("kind") == "overflow"]
    assert (overflow["path"], overflow["size"], overflow["reason"], overflow["lost"]) == ("", 0, "newline in name", 1)


def test_optimizer_server_keeps_a_live_name_ending_in_deleted_looked_up_in_the_container(container) -> None:
    # The host has no /data/x (deleted): the name must be checked in the container's root.
    c = container({"/data/x (deleted)": b"x", "/data/gone (deleted)": b"g"},
                  ["signal:{note}", "wait:{go}", "read:/data/x (deleted)", "read:/data/gone (deleted)",
                   "rm:/data/gone (deleted)", "signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(ready_w,), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    lines, err = go_and_collect(proc, ready_r, c, signal.SIGTERM)
    os.close(ready_r)
    assert err == b""
    paths = [o["path"] for o in lines]
    assert "/data/x (deleted)" in paths and "/data/x" not in paths


def test_trace_command_streams_until_ctrl_c(container) -> None:
    c = container({"/etc/x": b"x"}, ["signal:{note}", "wait:{go}", "read:/etc/x", "signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top"), "trace", "--host", "--pid", str(c.pid), "--ready-fd",
                             str(ready_w)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(ready_w,),
                            process_group=0)
    os.close(ready_w)
    lines, err = go_and_collect(proc, ready_r, c, signal.SIGINT)
    os.close(ready_r)
    assert [parse_line(json.dumps(o)).path for o in lines] == ["/etc/x"] and err == b""


def test_trace_command_reports_a_bad_pid_in_one_line() -> None:
    proc = subprocess.run([str(VENV_BIN / "nydus-top"), "trace", "--pid", str(2**22 + 3)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"pid {2**22 + 3}" in proc.stderr


def test_optimizer_server_reports_a_bad_pid_on_the_ready_fd_only() -> None:
    ready_r, ready_w = os.pipe()
    # Whatever the caller's environment and cwd hold, nothing of it is looked at.
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(ready_w,), cwd="/", env={
                                "_MNTNS_PID": str(2**22 + 3), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w),
                                "PYTHONPATH": "/nonexistent", "LD_PRELOAD": "/nonexistent.so"})
    os.close(ready_w)
    out, err = proc.communicate(timeout=10)
    status = os.read(ready_r, 2048)
    os.close(ready_r)
    assert proc.returncode == 2 and out == err == b""
    assert status == f"Epid {2**22 + 3}: No such process".encode()


def test_optimizer_server_resolves_its_target_inside_the_container(container) -> None:
    # /escape names a directory of the host, not of the container: the mark must not land there.
    c = container({"/data/a": b"a", "/escape": str(Path(__file__).parent)}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(ready_w,), env={"_MNTNS_PID": str(c.pid), "_TARGET": "/escape",
                                                      "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    out, err = proc.communicate(timeout=10)
    status = os.read(ready_r, 2048)
    os.close(ready_r)
    c.go()
    assert (proc.returncode, out, err) == (2, b"", b"")
    assert status == b"E_TARGET: No such file or directory"


def test_optimizer_server_exits_quietly_when_its_reader_is_gone(container) -> None:
    c = container({}, ["mkmany:/many:2000", "signal:{note}", "wait:{go}", "openmany:/many:2000",
                       "signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(ready_w,), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    assert select.select([ready_r], [], [], 10)[0] and os.read(ready_r, 5)[:1] == b"R"
    proc.stdout.close()  # the plugin died: our next line meets a closed pipe
    c.go()
    c.wait_note()
    assert proc.wait(timeout=10) == 1  # no SIGTERM needed
    assert proc.stderr.read() == b""
    proc.stderr.close()
    assert os.read(ready_r, 16) == b"S"  # the end byte: stopped
    os.close(ready_r)


def test_optimizer_server_takes_no_inherited_fd_into_the_container(container) -> None:
    c = container({}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    leaked = os.open(__file__, os.O_RDONLY)  # say, the plugin's NRI socket
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(leaked, ready_w), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    os.close(leaked)
    try:
        assert select.select([ready_r], [], [], 10)[0] and os.read(ready_r, 5)[:1] == b"R"
        fds = f"/proc/{proc.pid}/fd"
        assert __file__ not in {os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)}
        assert os.path.exists(f"{fds}/{ready_w}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=10)
        os.close(ready_r)


def test_optimizer_server_started_with_stdout_closed_exits_at_once(container) -> None:
    # issue 18 item 16: its /dev/null took the closed fd 1 and it traced into nothing until SIGTERM.
    c = container({}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" >&-', str(VENV_BIN / "nydus-top-tracer")],
                            stderr=subprocess.PIPE, pass_fds=(ready_w,), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    try:
        assert proc.wait(timeout=60) == 2
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert os.read(ready_r, 2048) == b"Estdout: Bad file descriptor" and proc.stderr.read() == b""
    proc.stderr.close()
    os.close(ready_r)
    c.go()


def test_optimizer_server_exits_when_its_reader_goes_while_nothing_happens(container) -> None:
    # No event comes, so no write ever meets the closed pipe: the reader's going is noticed by itself.
    c = container({}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([str(VENV_BIN / "nydus-top-tracer")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(ready_w,), process_group=0,
                            env={"_MNTNS_PID": str(c.pid), "_TARGET": "/", "NYDUS_TOP_READY_FD": str(ready_w)})
    os.close(ready_w)
    try:
        assert select.select([ready_r], [], [], 30)[0] and os.read(ready_r, 5)[:1] == b"R"
        proc.stdout.close()
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.stderr.read() == b"" and os.read(ready_r, 16) == b"S"
    proc.stderr.close()
    os.close(ready_r)
    c.go()
