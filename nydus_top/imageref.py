"""Image references parsed the way containerd and the nydus optimizer do.

The grammar and normalisation follow github.com/distribution/reference v0.6.0
(``ParseDockerRef``: familiar names gain ``docker.io/library/``, a reference
with neither tag nor digest gets the tag ``latest``).
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
_NAME_MAX = 255  # RepositoryNameTotalLengthMax

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + f"(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = _PATH_COMPONENT + f"(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[(?:[a-fA-F0-9:]+)\])"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII
)
_NAME = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)
# go-digest v1.0.0 registered algorithms and their encoded lengths.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


class ImageRefError(ValueError):
    """An image reference that containerd would not accept either."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference: ``domain/path[:tag][@digest]``."""

    domain: str  # e.g. "docker.io", "registry.local:5000"
    path: str  # repository path without the domain, e.g. "library/nginx"
    tag: str  # "" only when the reference is pinned by a digest and has no tag
    digest: str  # "" or "sha256:<hex>"

    @property
    def name(self) -> str:
        """Full repository name, e.g. ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def base(self) -> str:
        """Last path component, e.g. ``nginx``."""
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _split_docker_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, _OFFICIAL_PREFIX + name
    if first == "localhost":
        domain, remote = first, rest
    elif first == _LEGACY_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = _OFFICIAL_PREFIX + remote
    return domain, remote


def _check_digest(digest: str) -> None:
    algo, _, hexpart = digest.partition(":")
    want = _DIGEST_HEX_LEN.get(algo)
    if want is None:
        raise ImageRefError(f"unsupported digest algorithm {algo!r}")
    if len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise ImageRefError(f"invalid {algo} digest")


def parse_image_ref(ref: str) -> ImageRef:
    """Normalise *ref* like ``ParseDockerRef``; raise ImageRefError if containerd would reject it.

    ``nginx`` -> docker.io/library/nginx:latest. Unlike ``ParseDockerRef`` a reference with
    both a tag and a digest keeps its tag (result files are named after it).
    """
    if not ref:
        raise ImageRefError("empty image reference")
    if _IDENTIFIER.fullmatch(ref):
        raise ImageRefError(f"invalid image reference {ref!r}: a 64-character hex string is an ID, not a name")
    domain, remainder = _split_docker_domain(ref)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ImageRefError(f"invalid image reference {ref!r}: repository name must be lowercase")
    full = f"{domain}/{remainder}"
    match = _REFERENCE.fullmatch(full)
    if match is None:
        raise ImageRefError(f"invalid image reference {ref!r}")
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    name_match = _NAME.fullmatch(name)
    assert name_match is not None  # _REFERENCE already matched the same grammar
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > _NAME_MAX:
        raise ImageRefError(f"invalid image reference {ref!r}: repository name longer than {_NAME_MAX}")
    if digest:
        _check_digest(digest)
    elif not tag:
        tag = DEFAULT_TAG
    return ImageRef(domain, path, tag, digest)
