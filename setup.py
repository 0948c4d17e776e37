"""Build hooks that pyproject.toml cannot express: the cffi extension, the native optimizer server
executable and protobuf modules."""

import os
import runpy
import shlex
import subprocess
import sys
import sysconfig
from distutils.command.build_scripts import build_scripts  # setuptools has no own subclass
from pathlib import Path

from setuptools import setup  # first: it provides distutils
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "native"
# The optimizer plugin's server_path, installed next to nydus-top (bin/) as a "script" whose
# source is C: build_scripts compiles it, install_scripts copies it.
SERVER = "nydus-top-tracer"
# The command itself, our own launcher instead of a generated console script: that one starts
# Python without -I, so PYTHONPATH (its sitecustomize.py), PYTHONSTARTUP/PYTHONINSPECT or a user
# site directory would run code in a process that runs as root before nydus_top is imported, too
# early for the process to re-exec itself isolated. No "#!python" line either (pip would rewrite
# it and drop -I). The interpreter is the one building the package: pip runs the build backend
# with the interpreter it installs into, as it does to write console scripts' "#!" lines.
LAUNCHER = "nydus-top"
LAUNCHER_TEXT = """#!/bin/sh
# nydus-top's launcher (written by setup.py): Python isolated (-I), whatever the environment and
# the working directory hold.
exec {python} -I -m nydus_top "$@"
"""
SERVER_SOURCES = ["optimizer_server.c", *runpy.run_path(str(NATIVE / "build_native.py"))["CORE_SOURCES"]]


def compile_protos() -> None:
    """Generate ``*_pb2.py`` next to every ``.proto`` under ``nydus_top/`` (gitignored)."""
    from grpc_tools import protoc  # noqa: PLC0415 - grpc_tools (a build requirement) loads only to compile protos

    for proto in sorted((ROOT / "nydus_top").rglob("*.proto")):
        out = proto.parent
        argv = ["protoc", f"-I{out}", f"--python_out={out}", f"--pyi_out={out}", str(proto)]
        if protoc.main(argv) != 0:
            raise SystemExit(f"protoc failed on {proto}")


def compile_server(out: Path) -> None:
    """``nydus-top-tracer``: static where the C library allows it (no dynamic loader between
    exec and the mark), else dynamic."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [*cc, "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE", f"-I{NATIVE}",
            *(str(NATIVE / s) for s in SERVER_SOURCES), "-o", str(out)]
    if subprocess.run([*argv, "-static"], capture_output=True).returncode != 0:
        subprocess.run(argv, check=True)


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        super().run()


def write_launcher(out: Path) -> None:
    out.write_text(LAUNCHER_TEXT.format(python=shlex.quote(sys.executable)))
    out.chmod(0o755)


class BuildScriptsWithServer(build_scripts):
    def run(self) -> None:
        self.mkpath(self.build_dir)
        compile_server(Path(self.build_dir) / SERVER)
        write_launcher(Path(self.build_dir) / LAUNCHER)


setup(
    cffi_modules=["native/build_native.py:ffibuilder"],
    scripts=[f"native/{SERVER_SOURCES[0]}"],
    cmdclass={"build_py": BuildPyWithProtos, "build_scripts": BuildScriptsWithServer},
)
