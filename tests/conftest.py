"""Shared pytest fixtures. ``sandbox_node``: a real private containerd 1.7 node with NRI (scripts/sandbox)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from sandbox.cri import RunningContainer  # noqa: E402
from sandbox.node import SandboxNode  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxNode]:
    """A running sandbox node for the whole session, stopped and cleaned up at its end.

    Attributes: ``dir``, ``nri_socket``, ``cri_socket``, ``cri`` (a ``CriClient``), ``ctr``,
    ``optimizer_plugin``, ``cgroup_parent``; helpers ``run_demo()``, ``wait_for_log()``,
    ``load_image()``. Tests using it are marked ``sandbox`` automatically.
    """
    node = SandboxNode(tmp_path_factory.mktemp("sandbox"))
    node.up()
    try:
        yield node
    finally:
        node.down(purge=True)


@pytest.fixture
def demo_pod(sandbox_node: SandboxNode) -> Iterator[RunningContainer]:
    """A demo pod that has read its start-up files (``images.DEMO_STARTUP_FILES``); removed afterwards."""
    started = sandbox_node.run_demo()
    try:
        yield started
    finally:
        sandbox_node.cri.remove_pod(started.pod_id)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "sandbox_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sandbox)
