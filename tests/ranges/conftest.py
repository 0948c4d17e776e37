"""Fixtures of the range tracer tests: image layers on a loop-mounted ext4 (or a tmpfs) that
only a private mount namespace holds, and home-made containers whose lower layer lives there.

That namespace (held by a ``cat`` process) plays the node's host namespace: the tracer pool and
the container launcher run in it (through ``nsenter``), so the range tracer marks the lower
directories by the paths the overlay mount names, as on a node. Test code reaches the layers
from outside through ``/proc/<holder>/root``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_top.tracing.tracer import TracerPool
from testkit.container import Container, build_progs
from testkit.layers import LayerContainer, LayerFs


@pytest.fixture(scope="session")
def ext4_layers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LayerFs]:
    fs = LayerFs(tmp_path_factory.mktemp("layers"), "ext4")
    try:
        yield fs
    finally:
        fs.close()


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory, ext4_layers: LayerFs) -> dict[str, Path]:
    built = build_progs(tmp_path_factory.mktemp("progs"))
    return {"probe": built["probe"], "ctr": ext4_layers.wrap(built["ctr"])}


@pytest.fixture(scope="session")
def pool(ext4_layers: LayerFs) -> Iterator[TracerPool]:
    """A tracer pool whose helper lives in the layers' namespace (the stand-in host namespace)."""
    with TracerPool(python=str(ext4_layers.wrap(sys.executable))) as p:
        p.warm_up()
        yield p


@pytest.fixture
def image(request: pytest.FixtureRequest, ext4_layers: LayerFs) -> Path:
    """A fresh lower directory on the ext4 layer filesystem (one image), as a test-side path."""
    lower = ext4_layers.path / request.node.name[:60]
    lower.mkdir()
    return lower


@pytest.fixture
def container(tmp_path: Path, progs: dict[str, Path], ext4_layers: LayerFs) -> Iterator:
    """Factory: ``container(lower, files, steps)``; all are finished at teardown."""
    made: list[Container] = []

    def make(lower: Path, files: dict[str, bytes | int], steps: list[str]) -> Container:
        root = tmp_path / f"c{len(made)}"
        root.mkdir()
        c = LayerContainer(root, progs, ext4_layers, lower, files, steps)
        made.append(c)
        return c

    yield make
    for c in made:
        c.finish()
