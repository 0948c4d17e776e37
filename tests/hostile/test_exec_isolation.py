"""Python processes we start never import from the caller's working directory or honour its
environment's Python settings (issue 9 item 1): a booby-trapped ``nydus_top/`` in the cwd or on
PYTHONPATH, a PYTHONSTARTUP file and PYTHONINSPECT must not run code as root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nydus_top.tracing.tracer import TracerPool
from testkit.container import Container, build_progs

TRAP = "import os; open(os.path.join({marks!r}, {name!r} + '-' + str(os.getpid())), 'w').close()\n"


class Traps:
    """A working directory holding a booby-trapped ``nydus_top`` package, another on PYTHONPATH,
    a PYTHONSTARTUP file; each writes a mark file when Python executes it."""

    def __init__(self, root: Path) -> None:
        self.marks = root / "marks"
        self.cwd = root / "cwd"
        pythonpath = root / "pythonpath"
        for where, name in ((self.cwd, "cwd"), (pythonpath, "pythonpath")):
            (where / "nydus_top").mkdir(parents=True)
            (where / "nydus_top" / "__init__.py").write_text(TRAP.format(marks=str(self.marks), name=name))
            (where / "sitecustomize.py").write_text(TRAP.format(marks=str(self.marks), name=f"{name}-site"))
        (root / "startup.py").write_text(TRAP.format(marks=str(self.marks), name="startup"))
        self.marks.mkdir()
        self.env = {"PYTHONPATH": str(pythonpath), "PYTHONSTARTUP": str(root / "startup.py"),
                    "PYTHONINSPECT": "1"}

    def sprung(self) -> list[str]:
        return sorted(p.name for p in self.marks.iterdir())

    def caller(self, *args: str) -> list[str]:
        """argv of a nydus-top command whose own interpreter ignores the traps (-I) while its
        environment and working directory hold them: what its children inherit."""
        return [sys.executable, "-I", "-m", "nydus_top", *args]

    def caller_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


@pytest.fixture
def traps(tmp_path: Path) -> Traps:
    return Traps(tmp_path)


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_progs(tmp_path_factory.mktemp("progs"))


@pytest.fixture
def target(tmp_path: Path, progs: dict[str, Path]):
    """A home-made container (private mount namespace) waiting until the test ends."""
    c = Container(tmp_path / "container", progs, {"/etc/x": b"x"}, ["signal:{note}", "wait:{go}"])
    c.wait_note()
    yield c
    c.finish()


def test_the_traps_spring_in_a_plain_child(traps: Traps) -> None:
    # The control: a child started the way the helper used to be runs the traps (PYTHONSTARTUP
    # only at an interactive start, PYTHONINSPECT after the module: both ignored with -I anyway).
    subprocess.run([sys.executable, "-m", "nydus_top.tracing.helper"], cwd=traps.cwd, env=traps.caller_env(),
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    names = {n.rsplit("-", 1)[0] for n in traps.sprung()}
    assert {"cwd", "pythonpath-site"} <= names


def test_pool_helper_ignores_cwd_and_environment(traps: Traps, target: Container,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(traps.cwd)
    for key, value in traps.env.items():
        monkeypatch.setenv(key, value)
    with TracerPool() as pool:
        pool.warm_up()
        trace = pool.start(target.pid)
        trace.wait_ready(10)
        trace.stop()
        assert trace.end_reason == "stopped", trace.error
    assert traps.sprung() == []


def _helpers(proc: subprocess.Popen) -> list[psutil.Process]:
    return [c for c in psutil.Process(proc.pid).children()
            if "nydus_top.tracing.helper" in c.cmdline()]


def test_record_helper_ignores_cwd_and_environment(traps: Traps, tmp_path: Path) -> None:
    # No containerd: record warms its tracer helper, then keeps retrying the socket.
    proc = subprocess.Popen(traps.caller("record", "--nri-socket", str(tmp_path / "absent.sock"),
                                         "--persist-dir", str(tmp_path / "persist")),
                            cwd=traps.cwd, env=traps.caller_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert b"retrying" in line, line
        helpers = _helpers(proc)
        assert len(helpers) == 1  # the helper is up (it answered before record went on)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert traps.sprung() == []


def test_trace_runs_nothing_from_cwd_or_environment(traps: Traps, target: Container) -> None:
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen(traps.caller("trace", "--host", "--pid", str(target.pid), "--ready-fd", str(ready_w)),
                            cwd=traps.cwd, env=traps.caller_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(ready_w,))
    os.close(ready_w)
    try:
        assert os.read(ready_r, 5)[:1] == b"R"  # armed in the container's mount namespace
    finally:
        os.close(ready_r)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert traps.sprung() == []


def test_the_installed_command_runs_nothing_from_cwd_or_environment(traps: Traps, tmp_path: Path) -> None:
    # issue 18 item 14: the generated console script started Python without -I, so PYTHONPATH's
    # sitecustomize.py ran as root in the main process before nydus_top was imported. An empty
    # PYTHONPATH entry (the working directory) is planted too.
    env = {**traps.caller_env(), "PYTHONPATH": traps.env["PYTHONPATH"] + ":"}
    done = subprocess.run([str(Path(sys.executable).parent / "nydus-top"), "diff", "--help"], cwd=traps.cwd,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: nydus-top diff"), done.stderr
    assert traps.sprung() == []
