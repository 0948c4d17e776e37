"""Registry credentials for the recorder's pushes: a registry asking for them (htpasswd, Debian's
docker-registry on 127.0.0.1) gets them from the docker config the DaemonSet mounts from a
``kubernetes.io/dockerconfigjson`` Secret ($HOME/.docker/config.json); without them a push fails
with one line naming the registry and saying "unauthorized"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_top.recording.metrics import Metrics
from nydus_top.recording.pusher import ListPusher
from nydus_top.registry import artifacts as registry
from sandbox import images
from sandbox import registry as local

from .conftest import LocalRegistry
from .test_list_pusher import Log, _saved

CREDENTIALS = ("pusher", "Pa55-word")


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    started = local.start(tmp_path_factory.mktemp("auth-registry"), credentials=CREDENTIALS)
    try:
        yield started
    finally:
        started.stop()


def _image(reg: LocalRegistry, tmp_path: Path, repo: str) -> str:
    ref = f"{reg.host}/team/{repo}:1"
    archive = tmp_path / "app.tar"
    images.build_image(ref, {"/bin/app": images.File(b"#!/bin/sh\n", 0o755)}, ["/bin/app"], archive)
    reg.push_archive(archive, ref)  # with the credentials
    return ref


def _push(reg: LocalRegistry, tmp_path: Path, ref: str) -> tuple[Log, Metrics]:
    log, metrics = Log(), Metrics()
    pusher = ListPusher(log, plain_http=[reg.host], attempts=1, metrics=metrics)
    try:
        assert pusher.submit(_saved(tmp_path, "app:1", ref, ["/bin/app"]), ref)
        assert pusher.wait_idle(60)
    finally:
        pusher.close()
    return log, metrics


def test_a_push_with_the_docker_config_credentials_works(auth_registry: LocalRegistry, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(auth_registry.docker_config())
    monkeypatch.setenv("HOME", str(home))  # where the Secret's config.json is mounted: $HOME/.docker
    ref = _image(auth_registry, tmp_path, "with-credentials")
    log, metrics = _push(auth_registry, tmp_path, ref)
    assert len(log.matching(f"pushed {tmp_path / 'app:1'} to {ref} as sha256:")) == 1, log.lines
    assert metrics.registry.get_sample_value("nydus_top_pushes_succeeded_total", {"registry": auth_registry.host}) == 1
    client = registry.Client(auth_registry.host, plain_http=True)
    (attached,) = registry.pull_lists(client, registry.parse_reference(ref))
    assert attached.files[""].decode().splitlines() == ["/bin/app"]


def test_a_push_without_credentials_fails_in_one_line_naming_the_registry(
        auth_registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))  # no docker config at all
    ref = _image(auth_registry, tmp_path, "without-credentials")
    log, metrics = _push(auth_registry, tmp_path, ref)
    (line,) = log.matching("cannot push")
    assert auth_registry.host in line and re.search(r"\bunauthorized\b", line, re.IGNORECASE), line
    assert log.matching("pushed ") == []
    assert metrics.registry.get_sample_value("nydus_top_pushes_failed_total", {"registry": auth_registry.host}) == 1
