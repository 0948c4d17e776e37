"""The ORAS SDK (oras-py) internals the registry client relies on, reached here and nowhere else.

The SDK has no public call for three things the client needs. Each is one function below, and
``tests/registry/test_oras_sdk.py`` holds one test per internal, so an SDK upgrade that changes one
fails that test by name instead of a registry command somewhere:

* ``Registry.do_request.__wrapped__``: a request with the SDK's answers to auth challenges but
  without its retry decorator, which sleeps between tries (our callers retry and keep a deadline);
* ``Registry.auth.load_configs(container)``: the credentials of the docker config
  (``~/.docker/config.json``) for one registry;
* ``Registry.get_container(name)``: the SDK's parsed ``host/repository`` those are looked up by.

One more is replaced rather than reached: the SDK's default ("token") authentication answers every
challenge by asking a token server, and takes a ``Basic`` challenge's realm (a plain name, e.g.
docker-registry's htpasswd realm) for that server's address. :class:`_BasicOrToken` answers a
``Basic`` challenge with the docker config's credentials instead, and leaves ``Bearer`` ones to
the SDK.
"""

from __future__ import annotations

from typing import Any

import oras.auth.token
import oras.provider
import requests


class _BasicOrToken(oras.auth.token.TokenAuth):  # type: ignore[misc]
    """The SDK's token authentication, but a ``Basic`` challenge gets the credentials of the docker
    config (none: the registry's 401 stands, and says unauthorized)."""

    def authenticate_request(self, original: requests.Response, headers: dict[str, str] | None,
                             refresh: bool = False) -> tuple[dict[str, str], bool]:
        challenge = original.headers.get("Www-Authenticate", "")
        if challenge.split(" ", 1)[0].lower() != "basic":
            answer: tuple[dict[str, str], bool] = super().authenticate_request(original, headers, refresh)
            return answer
        credentials = getattr(self, "_basic_auth", None)
        if not credentials:
            return dict(headers or {}), False
        return {**(headers or {}), "Authorization": f"Basic {credentials}"}, True


def new_registry(hostname: str, *, plain_http: bool) -> Any:
    """The SDK's client of one registry (HTTP when *plain_http*), answering Basic challenges."""
    registry = oras.provider.Registry(hostname=hostname, insecure=plain_http)
    auth = _BasicOrToken()
    auth.__dict__.update(registry.auth.__dict__)  # the session, scheme and TLS setting the SDK gave it
    registry.auth = auth
    return registry


def session(registry: Any) -> requests.Session:
    """The requests session the SDK's client sends through (for adapters and closing)."""
    made: requests.Session = registry.session
    return made


def load_credentials(registry: Any, hostname: str, repository: str) -> None:
    """Have *registry* send the docker config's credentials for *hostname* (if it has any)."""
    registry.auth.load_configs(registry.get_container(f"{hostname}/{repository}"))


def send(registry: Any, url: str, method: str, *, data: bytes | None,
         headers: dict[str, str]) -> requests.Response:
    """One request, the body left to stream, auth challenges answered, never retried."""
    do_request = type(registry).do_request
    unretried = getattr(do_request, "__wrapped__", do_request)
    response: requests.Response = unretried(registry, url, method, data=data, headers=headers, stream=True)
    return response
