"""Shared pytest fixtures. ``sandbox_node``: a real private containerd 1.7 node with NRI (scripts/sandbox)."""

from __future__ import annotations

import os
import signal
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
    ``load_image()``. Tests using it are marked ``sandbox`` automatically. With
    ``NYDUS_TOP_TEST_SANDBOX_DIR`` set, that node is brought up if needed and left running.
    """
    reused = os.environ.get("NYDUS_TOP_TEST_SANDBOX_DIR")  # a node kept up between runs while developing
    node = SandboxNode(reused or tmp_path_factory.mktemp("sandbox"))
    # SIGTERM (e.g. from `timeout`) would end pytest without teardown and leak the node: make it
    # an interruption, which pytest tears down after.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        node.up()
        yield node
    finally:
        if not reused:
            node.down(purge=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
