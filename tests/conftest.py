"""Shared pytest fixtures. ``sandbox_node``: a real private containerd node with NRI (scripts/sandbox).

Sandbox tests run against containerd 1.7 (``DEFAULT_CONTAINERD``); those marked ``every_containerd``
(NRI, record, app and node clean-up) run once per supported version (1.7 and 2.1). ``--containerd V``
(repeatable) runs every sandbox test against just the versions given.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from sandbox.cri import RunningContainer
from sandbox.node import CONTAINERD_SUITES, DEFAULT_CONTAINERD, SandboxNode

CONTAINERD_VERSIONS = sorted(CONTAINERD_SUITES)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--containerd", action="append", choices=CONTAINERD_VERSIONS,
                     help="run every sandbox test against only this containerd version (repeatable); default: "
                          f"tests marked every_containerd against {' and '.join(CONTAINERD_VERSIONS)}, "
                          f"the others against {DEFAULT_CONTAINERD}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every_containerd: a sandbox test run against each containerd version "
                                       f"the sandbox node supports ({', '.join(CONTAINERD_VERSIONS)})")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``containerd_version`` (and so ``sandbox_node``) per test, once per session and version."""
    if "containerd_version" not in metafunc.fixturenames:
        return
    versions = metafunc.config.getoption("containerd") or (
        CONTAINERD_VERSIONS if metafunc.definition.get_closest_marker("every_containerd") else [DEFAULT_CONTAINERD])
    metafunc.parametrize("containerd_version", sorted(set(versions)), indirect=True, scope="session",
                         ids=lambda v: f"containerd{v}")


@pytest.fixture(scope="session")
def containerd_version(request: pytest.FixtureRequest) -> str:
    """The containerd version ("1.7" or "2.1") the test's sandbox node runs."""
    return request.param


@pytest.fixture(scope="session")
def sandbox_node(containerd_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxNode]:
    """A running sandbox node for the whole session, stopped and cleaned up at its end.

    Attributes: ``dir``, ``nri_socket``, ``cri_socket``, ``cri`` (a ``CriClient``), ``ctr``,
    ``optimizer_plugin``, ``cgroup_parent``; helpers ``run_demo()``, ``wait_for_log()``,
    ``load_image()``, ``containerd``. Tests using it are marked ``sandbox`` automatically. With
    ``NYDUS_TOP_TEST_SANDBOX_DIR=DIR`` set, the node in ``DIR/<version>`` is brought up if needed and
    left running.
    """
    reused = os.environ.get("NYDUS_TOP_TEST_SANDBOX_DIR")  # nodes kept up between runs while developing
    directory = Path(reused) / containerd_version if reused else tmp_path_factory.mktemp(f"sandbox{containerd_version}")
    node = SandboxNode(directory, containerd_version)
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
        if {"sandbox_node", "containerd_version"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sandbox)
