"""Build hooks that pyproject.toml cannot express: the cffi extension and protobuf modules."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def compile_protos() -> None:
    """Generate ``*_pb2.py`` next to every ``.proto`` under ``nydus_top/`` (gitignored)."""
    from grpc_tools import protoc  # build requirement, see pyproject.toml

    for proto in sorted((ROOT / "nydus_top").rglob("*.proto")):
        out = proto.parent
        argv = ["protoc", f"-I{out}", f"--python_out={out}", f"--pyi_out={out}", str(proto)]
        if protoc.main(argv) != 0:
            raise SystemExit(f"protoc failed on {proto}")


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        super().run()


setup(
    cffi_modules=["native/build_native.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithProtos},
)
