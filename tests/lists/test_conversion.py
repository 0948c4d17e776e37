"""nydusify conversion against a stand-in executable (tests/lists/fake_nydusify): nydusify itself
cannot be installed here. The stand-in records its argv and stdin and can fail, stream or hang."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from nydus_top.cli import main
from nydus_top.config import default_config
from nydus_top.convert.nydusify import (
    Conversion,
    ConversionError,
    ConversionResult,
    OutputLine,
    build_argv,
    prefetch_input,
    prepare_conversion,
    target_for,
)
from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile

from .helpers import FAKE_NYDUSIFY


def fake_env(tmp_path: Path, mode: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "FAKE_NYDUSIFY_RECORD": str(tmp_path), "FAKE_NYDUSIFY_MODE": mode, **extra}


def recorded_argv(tmp_path: Path) -> list[str]:
    return json.loads((tmp_path / "argv.json").read_text())


def test_target_template_fields() -> None:
    assert target_for("{repo}:{tag}-nydus", "nginx:1.25") == "docker.io/library/nginx:1.25-nydus"
    assert target_for("registry.local:5000/{path}:{tag}", "ghcr.io/org/app") == "registry.local:5000/org/app:latest"
    assert target_for("{registry}/nydus/{name}:{tag}", "quay.io/a/b:v1") == "quay.io/nydus/b:v1"
    digest = "sha256:" + "ab" * 32
    assert target_for("{repo}:{tag}-nydus", f"nginx@{digest}") == "docker.io/library/nginx:sha256-abababababab-nydus"
    with pytest.raises(ConversionError, match="source image: invalid image reference"):
        target_for("{repo}:nydus", "../../etc")
    with pytest.raises(ConversionError, match="gives no valid image"):
        target_for("{repo}:{tag}/x", "nginx")


def test_argv_is_a_list_and_never_a_shell_string() -> None:
    argv = build_argv("/usr/bin/nydusify", "nginx:1; rm -rf /", "t:$(id)", ["--platform", "linux/amd64"])
    assert argv == ["/usr/bin/nydusify", "convert", "--source", "nginx:1; rm -rf /", "--target", "t:$(id)",
                    "--fs-version", "6", "--prefetch-patterns", "--platform", "linux/amd64"]


def test_empty_list_is_refused() -> None:
    with pytest.raises(ConversionError, match="prefetch list is empty"):
        prefetch_input([])
    with pytest.raises(ConversionError, match="prefetch list is empty"):
        prefetch_input([ListedFile("/bad\n")])


def test_success_passes_argv_and_list_on_stdin(tmp_path: Path) -> None:
    entries = [ListedFile("/usr/bin/app"), ListedFile("/etc/app.conf"), ListedFile("/odd\nname"),
               ListedFile("/usr/bin/app")]
    data, warnings = prefetch_input(entries)
    assert warnings == ("left out '/odd\\nname': contains a newline",)
    argv = build_argv(str(FAKE_NYDUSIFY), "nginx:1.25", "nginx:1.25-nydus", ["--backend-type", "registry"])
    lines: list[OutputLine] = []
    result = Conversion(argv, data, env=fake_env(tmp_path, "ok")).run(lines.append)
    assert result.ok and result.returncode == 0 and not result.cancelled
    assert result.summary().startswith("conversion succeeded after ")
    assert recorded_argv(tmp_path) == argv[1:]
    assert (tmp_path / "stdin").read_bytes() == b"/usr/bin/app\n/etc/app.conf\n"
    texts = [line.text for line in lines]
    assert sorted(texts) == sorted(['level=info msg="parsing source image"', 'level=info msg="converting layers"',
                                    'level=info msg="prefetch patterns: 2 lines"',
                                    'level=info msg="converted image pushed"'])  # stdout and stderr merged
    elapsed = [line.elapsed for line in lines]
    assert elapsed == sorted(elapsed) and all(0 <= e <= result.elapsed for e in elapsed)


def test_large_list_on_stdin_does_not_deadlock(tmp_path: Path) -> None:
    entries = [ListedFile(f"/usr/share/big/{i:07d}") for i in range(100_000)]  # ~2.3 MB >> pipe buffer
    data, _ = prefetch_input(entries)
    result = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), data, env=fake_env(tmp_path, "ok")).run()
    assert result.ok
    assert (tmp_path / "stdin").read_bytes() == data


def test_failure_reports_exit_status_and_output(tmp_path: Path) -> None:
    lines: list[OutputLine] = []
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n",
                      env=fake_env(tmp_path, "fail", FAKE_NYDUSIFY_EXIT="3"))
    result = conv.run(lines.append)
    assert not result.ok and result.returncode == 3 and not result.cancelled
    assert "nydusify exited with status 3" in result.summary()
    assert [line.text for line in lines] == ['level=fatal msg="failed to pull source image: not found"']


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    where = (r" \(install nydusify on PATH, or name it with --nydusify PATH or \[convert\] nydusify"
             r" in the configuration\)$")
    with pytest.raises(ConversionError, match=r"^cannot run /nonexistent/nydusify: No such file or directory" + where):
        Conversion(build_argv("/nonexistent/nydusify", "a", "b"), b"/x\n").run()
    env = {"PATH": str(tmp_path)}
    with pytest.raises(ConversionError, match=r"^cannot run nydusify: not on PATH" + where):
        Conversion(build_argv("nydusify", "a", "b"), b"/x\n", env=env).run()


def test_output_is_streamed_while_nydusify_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n",
                      env=fake_env(tmp_path, "stream", FAKE_NYDUSIFY_GATE=str(gate)))
    seen: list[str] = []

    def on_line(line: OutputLine) -> None:
        seen.append(line.text)
        if line.text == "step 1":
            # nydusify is blocked on the gate until we answer: the line arrived while it runs
            assert conv.pid is not None and Path(f"/proc/{conv.pid}").exists()
            with open(gate, "w") as g:
                g.write("go\n")

    result = conv.run(on_line)
    assert seen == ["step 1", "step 2"] and result.ok


def _run_in_thread(conv: Conversion) -> tuple[threading.Thread, list[ConversionResult], threading.Event]:
    results: list[ConversionResult] = []
    ready = threading.Event()

    def on_line(line: OutputLine) -> None:
        if line.text == "ready":
            ready.set()

    thread = threading.Thread(target=lambda: results.append(conv.run(on_line)))
    thread.start()
    return thread, results, ready


@pytest.mark.parametrize(("mode", "signal_seen"), [("hang", signal.SIGTERM), ("stubborn", signal.SIGKILL)])
def test_cancel_kills_the_process_group_and_reaps(tmp_path: Path, mode: str, signal_seen: int) -> None:
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n", env=fake_env(tmp_path, mode),
                      kill_grace=0.3)
    thread, results, ready = _run_in_thread(conv)
    assert ready.wait(30)
    child = int((tmp_path / "child.pid").read_text())
    child_fd = os.pidfd_open(child)  # becomes readable when the grandchild has exited
    leader = conv.pid
    conv.cancel()
    thread.join(30)
    assert not thread.is_alive()
    (result,) = results
    assert result.cancelled and not result.ok
    assert result.returncode == -signal_seen
    assert result.summary().startswith("conversion cancelled after ")
    assert select.select([child_fd], [], [], 30)[0] == [child_fd]  # nydusify's own child is gone too
    os.close(child_fd)
    assert leader is not None and not Path(f"/proc/{leader}").exists()  # reaped: no zombie left
    conv.cancel()  # idempotent after the end


def test_cancel_before_start_never_runs(tmp_path: Path) -> None:
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n", env=fake_env(tmp_path, "ok"))
    conv.cancel()
    result = conv.run()
    assert result.cancelled and conv.pid is None and not (tmp_path / "argv.json").exists()


def test_failing_callback_stops_nydusify(tmp_path: Path) -> None:
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n", env=fake_env(tmp_path, "hang"))

    def on_line(line: OutputLine) -> None:
        raise RuntimeError("UI gone")

    with pytest.raises(RuntimeError):
        conv.run(on_line)
    assert conv.pid is not None and not Path(f"/proc/{conv.pid}").exists()


def test_prepare_from_config(tmp_path: Path) -> None:
    config = dataclasses.replace(default_config(), nydusify=str(FAKE_NYDUSIFY), nydusify_args=("--a", "1"),
                                 target_template="reg.local/{name}:{tag}")
    conv, warnings = prepare_conversion(config, "ghcr.io/org/app:v3", [ListedFile("/bin/app"), ListedFile("x")],
                                        extra_args=["--b"])
    assert conv.argv == build_argv(str(FAKE_NYDUSIFY), "ghcr.io/org/app:v3", "reg.local/app:v3", ["--a", "1", "--b"])
    assert warnings == ("left out 'x': not an absolute path",)
    conv, _ = prepare_conversion(config, "app", [ListedFile("/bin/app")], target="other:1", nydusify="/bin/nydusify")
    assert conv.argv[:6] == ["/bin/nydusify", "convert", "--source", "app", "--target", "other:1"]
    for source, target, role in (("--help", "other:1", "source"), ("app", "-v", "target"), ("app", "", "target")):
        with pytest.raises(ConversionError, match=f"^{role} image: "):
            prepare_conversion(config, source, [ListedFile("/bin/app")], target=target)


# ---------------------------------------------------------------- the `nydus-top convert` command


def _config(tmp_path: Path, persist: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'persist_dir = "{persist}"\n[convert]\nnydusify = "{FAKE_NYDUSIFY}"\n'
                    'extra_args = ["--backend-type", "registry"]\ntarget = "reg.local/{path}:{tag}-nydus"\n')
    return path


def test_convert_command_takes_the_source_from_the_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "rec"
    record.mkdir()
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(record))
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    persist = tmp_path / "results"
    # Under persist_dir the registry host is gone: "demo:1" would read as Docker Hub's library/demo.
    listing = persist / "demo:1.timeout30s"
    save_list([ListedFile("/usr/sbin/nginx", 10, 1), ListedFile("/etc/nginx/nginx.conf", 5, 2)], listing,
              meta=ListMeta(image="nydus-top.local/demo:1"))
    status = main(["convert", str(listing), "--config", str(_config(tmp_path, persist)),
                   "--nydusify-arg=--platform=linux/amd64"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert recorded_argv(record) == ["convert", "--source", "nydus-top.local/demo:1", "--target",
                                     "reg.local/demo:1-nydus", "--fs-version", "6",
                                     "--prefetch-patterns", "--backend-type", "registry", "--platform=linux/amd64"]
    assert (record / "stdin").read_bytes() == b"/usr/sbin/nginx\n/etc/nginx/nginx.conf\n"
    assert "s] level=info msg=\"converted image pushed\"" in out
    assert out.splitlines()[-1].startswith("conversion succeeded after ")


def test_convert_command_never_guesses_a_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "rec"
    record.mkdir()
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(record))
    persist = tmp_path / "results"
    listing = persist / "library" / "nginx:1.25"  # the optimizer's own result: no metadata
    save_list([ListedFile("/usr/sbin/nginx")], listing)
    assert main(["convert", str(listing), "--config", str(_config(tmp_path, persist))]) == 2
    err = capsys.readouterr().err
    assert err == (f"nydus-top convert: {listing} names no image (no image in {listing}.nydus-top.json):"
                   " pass --source REGISTRY/REPO:TAG\n")
    assert not (record / "argv.json").exists()


def test_convert_command_says_when_the_list_may_miss_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(tmp_path))
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    listing = tmp_path / "list"
    save_list([ListedFile("/bin/sh")], listing, meta=ListMeta(image="reg.local/a:1", complete=False,
                                                             incomplete="mark was late"))
    assert main(["convert", str(listing), "--config", str(_config(tmp_path, tmp_path / "results"))]) == 0
    assert "nydus-top convert: the list may miss files: mark was late\n" in capsys.readouterr().err


def test_convert_command_failure_and_missing_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "fail")
    monkeypatch.setenv("FAKE_NYDUSIFY_EXIT", "4")
    listing = tmp_path / "elsewhere"
    listing.write_text("/bin/sh\n")
    config = str(_config(tmp_path, tmp_path / "results"))
    assert main(["convert", str(listing), "--config", config]) == 2
    assert "pass --source" in capsys.readouterr().err
    assert main(["convert", str(listing), "--config", config, "--source", "alpine:3"]) == 4
    err = capsys.readouterr().err
    assert "nydusify exited with status 4" in err


def test_convert_command_range_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "list"
    listing.write_text("/bin/sh\n/lib/libc.so\n")
    out_json = tmp_path / "prefetch.json"
    config = str(_config(tmp_path, tmp_path / "results"))
    assert main(["convert", str(listing), "--config", config, "--range-list", str(out_json)]) == 0
    assert json.loads(out_json.read_text()) == {"version": "v1", "files": [
        {"path": "/bin/sh", "ranges": None}, {"path": "/lib/libc.so", "ranges": None}]}
    assert main(["convert", str(listing), "--config", config, "--range-list", str(out_json)]) == 1
    assert capsys.readouterr().err == f"nydus-top convert: {out_json} already exists (--force replaces it)\n"
    assert main(["convert", str(listing), "--config", config, "--range-list", str(out_json), "--force"]) == 0


def test_convert_command_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[convert]\ntarget = 5\n")
    (tmp_path / "list").write_text("/x\n")
    assert main(["convert", str(tmp_path / "list"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"nydus-top convert: {bad}: key 'convert.target' must be a non-empty string, got 5\n"


# Started with explicit dispositions, never the ones pytest happens to have: a background job's
# shell starts it with SIGINT ignored (issue 18 item 17).
WITH_DISPOSITIONS = ("import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1])); "
                     "signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execv(sys.argv[2], sys.argv[2:])")


@pytest.mark.parametrize(("sig", "sigint", "mode"), [
    (signal.SIGINT, "SIG_DFL", "hang"), (signal.SIGINT, "SIG_IGN", "hang"),
    (signal.SIGTERM, "SIG_DFL", "hang"), (signal.SIGTERM, "SIG_IGN", "hang"), (signal.SIGTERM, "SIG_IGN", "stubborn"),
])
def test_convert_command_signals_end_every_process_of_nydusify(tmp_path: Path, sig: signal.Signals, sigint: str,
                                                               mode: str) -> None:
    listing = tmp_path / "list"
    listing.write_text("/bin/sh\n")
    env = {**fake_env(tmp_path, mode), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", WITH_DISPOSITIONS, sigint, sys.executable, "-I", "-m", "nydus_top", "convert",
         str(listing), "--source", "alpine:3", "--config", str(_config(tmp_path, tmp_path / "results"))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.endswith("] ready\n"):
                break
        assert lines[0].startswith("running: ") and lines[-1].endswith("] ready\n")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2  # nydusify and its own child
        proc.send_signal(sig)
        assert proc.wait(60) == 128 + sig
        assert psutil.wait_procs(children, timeout=30)[1] == []  # every process of nydusify's is gone
    finally:
        for p in [proc, *children]:  # whatever was left behind, never for the next tests
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                p.kill()
        proc.wait()
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    assert f"nydus-top convert: {sig.name}: conversion cancelled after " in stderr



@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_convert_command_signals_before_nydusify_starts_end_it_too(tmp_path: Path, sig: signal.Signals) -> None:
    # --pull from a registry that accepts and never answers: the signal comes while the pull hangs,
    # before any nydusify; started with SIGINT ignored, as a background job is.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        hole.settimeout(60)
        image = f"127.0.0.1:{hole.getsockname()[1]}/team/app:1"
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WITH_DISPOSITIONS, "SIG_IGN", sys.executable, "-I", "-m", "nydus_top",
             "convert", "--pull", image, "--plain-http", "--config", str(_config(tmp_path, tmp_path / "results"))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = hole.accept()  # the pull is under way
            with connection:
                proc.send_signal(sig)
                assert proc.wait(60) == 128 + sig
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.stderr is not None and proc.stderr.read() == f"nydus-top convert: {sig.name}: stopped\n"


def test_convert_command_without_nydusify_names_where_it_is_set(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "list"
    save_list([ListedFile("/bin/sh")], listing, meta=ListMeta(image="reg.local/a:1"))
    config = str(_config(tmp_path, tmp_path / "results"))
    assert main(["convert", str(listing), "--config", config, "--nydusify", "nydusify-not-installed"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("nydus-top convert: cannot run nydusify-not-installed: not on PATH (install nydusify on PATH,"
                    " or name it with --nydusify PATH or [convert] nydusify in the configuration)")


# ---- several steps (ctr-remote's convert, then its push) and the other formats ----------------


def test_later_steps_run_in_turn_with_empty_stdin(tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    script = "import sys, pathlib; pathlib.Path(sys.argv[1], 'stdin').write_bytes(sys.stdin.buffer.read())"
    steps = [[sys.executable, "-c", script, str(d)] for d in (first, second)]
    lines: list[OutputLine] = []
    result = Conversion(steps[0], b"/a\n", then=steps[1:]).run(lines.append)
    assert result.ok and (first / "stdin").read_bytes() == b"/a\n" and (second / "stdin").read_bytes() == b""
    assert [line.text for line in lines] == ["$ " + " ".join(steps[1])]


def test_a_failed_step_runs_no_later_one_and_is_named(tmp_path: Path) -> None:
    later = tmp_path / "later"
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n",
                      then=[["/bin/sh", "-c", f"touch {later}"]],
                      env=fake_env(tmp_path, "fail", FAKE_NYDUSIFY_EXIT="5"))
    result = conv.run()
    assert result.returncode == 5 and not later.exists()
    assert result.summary().endswith("fake_nydusify exited with status 5")


def test_cancel_during_the_first_step_starts_no_later_one(tmp_path: Path) -> None:
    later = tmp_path / "later"
    conv = Conversion(build_argv(str(FAKE_NYDUSIFY), "a", "b"), b"/x\n", then=[["/bin/sh", "-c", f"touch {later}"]],
                      env=fake_env(tmp_path, "hang"))

    def on_line(line: OutputLine) -> None:
        if line.text == "ready":
            conv.cancel()

    result = conv.run(on_line)
    assert result.cancelled and not later.exists()


def test_record_is_one_json_path_per_line_in_order() -> None:
    from nydus_top.convert.ctr_remote import record_input

    data, warnings = record_input([ListedFile("/b"), ListedFile("/a\nb"), ListedFile("rel"), ListedFile("/b"),
                                   ListedFile("/\udcff"), ListedFile("/a")])
    assert [json.loads(line) for line in data.decode().splitlines()] == [{"path": "/b"}, {"path": "/a\nb"},
                                                                         {"path": "/a"}]
    assert warnings == ("left out 'rel': not an absolute path", "left out '/\\udcff': not UTF-8 (a record is JSON)")
    with pytest.raises(ConversionError, match="prefetch list is empty"):
        record_input([ListedFile("rel")])


def test_ctr_remote_argv_from_config() -> None:
    from nydus_top.convert.formats import prepare

    config = dataclasses.replace(default_config(), ctr_remote="/opt/ctr-remote",
                                 containerd_address=Path("/n/containerd.sock"), registry_plain_http=("reg.local:5000",))
    conv, _ = prepare(config, "zstdchunked", "reg.local:5000/app:1", [ListedFile("/bin/app")])
    assert conv.steps == [
        ["/opt/ctr-remote", "--address", "/n/containerd.sock", "--namespace", "k8s.io", "image", "convert", "--oci",
         "--zstdchunked", "--zstdchunked-record-in", "/dev/stdin", "reg.local:5000/app:1",
         "reg.local:5000/app:1-zstdchunked"],
        ["/opt/ctr-remote", "--address", "/n/containerd.sock", "--namespace", "k8s.io", "image", "push",
         "--plain-http", "reg.local:5000/app:1-zstdchunked"]]
    conv, _ = prepare(config, "estargz", "nginx", [ListedFile("/bin/app")], push=False)
    assert conv.steps == [conv.argv] and conv.argv[-2:] == ["docker.io/library/nginx:latest",
                                                           "docker.io/library/nginx:latest-esgz"]
    with pytest.raises(ConversionError, match="unknown format 'squashfs'"):
        prepare(config, "squashfs", "nginx", [ListedFile("/bin/app")])
