"""Fixtures of the start-up capture and recorder tests: the workload image on the sandbox node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.harness import load_workload


@pytest.fixture(scope="session")
def workload_image(sandbox_node, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The start-up workload imported into the sandbox node; its reference."""
    return load_workload(sandbox_node, tmp_path_factory.mktemp("workload"))


@pytest.fixture
def pod(sandbox_node) -> Iterator[str]:
    """A fresh pod for the test's containers; removed with them afterwards."""
    pod_id = sandbox_node.cri.run_pod("record-test", namespace="record")
    try:
        yield pod_id
    finally:
        sandbox_node.cri.remove_pod(pod_id)


@pytest.fixture
def persist(tmp_path: Path) -> Path:
    return tmp_path / "results"
