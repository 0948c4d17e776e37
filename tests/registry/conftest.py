"""A real registry (CNCF distribution, Debian's docker-registry) on 127.0.0.1, storage in a temp dir."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from sandbox import images
from sandbox import registry as local
from sandbox.registry import LocalRegistry

__all__ = ["LocalRegistry"]


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    started = local.start(tmp_path_factory.mktemp("registry"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def pushed_image(local_registry: LocalRegistry, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A small real OCI image in the local registry, in a repository of this test's own:
    (reference, manifest digest)."""
    archive = tmp_path / "app.tar"
    repo = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    ref = f"{local_registry.host}/team/{repo}:1"
    images.build_image(ref, {"/bin/app": images.File(b"#!/bin/sh\necho app\n", 0o755), "/etc/app.conf": b"x=1\n"},
                       ["/bin/app"], archive)
    return ref, local_registry.push_archive(archive, ref)
