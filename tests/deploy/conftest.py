"""Fixtures of the deploy tests: a real registry on 127.0.0.1 (as in tests/registry)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import registry as local


@pytest.fixture(scope="session")
def deploy_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalRegistry]:
    started = local.start(tmp_path_factory.mktemp("deploy-registry"))
    try:
        yield started
    finally:
        started.stop()
