"""Fixtures for the tracer tests: compiled test programs, a warm tracer pool, containers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_top.tracing.tracer import TracerPool
from testkit.container import Container, build_progs


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_progs(tmp_path_factory.mktemp("progs"))


@pytest.fixture(scope="session")
def pool() -> Iterator[TracerPool]:
    with TracerPool() as p:
        p.warm_up()
        yield p


@pytest.fixture
def container(tmp_path: Path, progs: dict[str, Path]) -> Iterator:
    """Factory: ``container(files, steps)`` starts a container; all are finished at teardown."""
    made: list[Container] = []

    def make(files: dict[str, bytes | str | int], steps: list[str]) -> Container:
        c = Container(tmp_path / f"c{len(made)}", progs, files, steps)
        made.append(c)
        return c

    yield make
    for c in made:
        c.finish()
