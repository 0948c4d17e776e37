"""One test per ORAS SDK internal the registry client relies on (nydus_top/registry/oras_sdk.py).

An SDK upgrade that renames or reshapes one of them fails the test named after it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import oras.provider
import pytest

from nydus_top.registry import oras_sdk
from tests.registry.conftest import LocalRegistry


def test_do_request_has_an_unretried_form_that_answers(local_registry: LocalRegistry) -> None:
    # The retry decorator keeps the undecorated function as __wrapped__; send() calls that one.
    assert callable(getattr(oras.provider.Registry.do_request, "__wrapped__", None))
    registry = oras_sdk.new_registry(local_registry.host, plain_http=True)
    response = oras_sdk.send(registry, f"http://{local_registry.host}/v2/", "GET", data=None, headers={})
    assert response.status_code == 200


def test_do_request_unretried_does_not_retry(monkeypatch: pytest.MonkeyPatch, local_registry: LocalRegistry) -> None:
    # A refused connection raises at once, without the decorator's sleeps between tries.
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", lambda s: slept.append(s))
    registry = oras_sdk.new_registry("127.0.0.1:9", plain_http=True)
    with pytest.raises(Exception, match="(?i)refused|connect"):
        oras_sdk.send(registry, "http://127.0.0.1:9/v2/", "GET", data=None, headers={})
    assert slept == []


def test_get_container_parses_host_and_repository() -> None:
    registry = oras_sdk.new_registry("127.0.0.1:5000", plain_http=True)
    container = registry.get_container("127.0.0.1:5000/team/app")
    assert (container.registry, container.namespace, container.repository) == ("127.0.0.1:5000", "team", "app")


def test_load_configs_takes_the_docker_configs_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = base64.b64encode(b"alice:s3cret").decode()
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": secret}}}))
    monkeypatch.setenv("HOME", str(tmp_path))
    registry = oras_sdk.new_registry("127.0.0.1:5000", plain_http=True)
    oras_sdk.load_credentials(registry, "127.0.0.1:5000", "team/app")
    assert registry.auth._basic_auth == secret
    other = oras_sdk.new_registry("127.0.0.1:5001", plain_http=True)
    oras_sdk.load_credentials(other, "127.0.0.1:5001", "team/app")
    assert not getattr(other.auth, "_basic_auth", None)


def test_session_is_the_one_requests_go_through() -> None:
    registry = oras_sdk.new_registry("127.0.0.1:5000", plain_http=True)
    assert oras_sdk.session(registry) is registry.session
