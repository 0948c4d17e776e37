"""Prefetch lists stored in the OCI registry beside the image they belong to.

A list is pushed as an OCI 1.1 artifact: an image manifest with ``artifactType`` =
:data:`ARTIFACT_TYPE`, the empty config, one layer per file (the plain list, its csv, its
metadata and, when present, its range list) and a ``subject`` naming the image's manifest digest.
Registries with the referrers API list it by themselves; for those without it (CNCF distribution
2.x among them) the referrers tag schema is kept up to date: an image index tagged
``sha256-<hex of the subject>`` that lists every artifact referring to it.

HTTP and authentication (docker config credentials, token and basic auth) go through the ORAS
Python SDK's registry session (imported only by the registry commands); every request has a timeout and nothing
retries by sleeping in here (the recorder retries pushes with its own backoff, off the NRI loop). Everything read from
a registry is bounded (:data:`MAX_MANIFEST_BYTES`, :data:`MAX_BLOB_BYTES`) and checked against
its digest before use.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from nydus_top.lists.files import ListFileError, check_files, write_atomic
from nydus_top.lists.meta import ListMeta
from nydus_top.registry import oras_sdk

ARTIFACT_TYPE = "application/vnd.nydus-top.prefetch-list.v1"
# The files of a list, by the suffix they have beside the plain list, and their media types.
LAYERS = {
    "": "application/vnd.nydus-top.prefetch-list.v1+text",
    ".csv": "application/vnd.nydus-top.prefetch-list.v1+csv",
    ".nydus-top.json": "application/vnd.nydus-top.list-meta.v1+json",
    ".ranges.json": "application/vnd.nydus-top.range-list.v1+json",
}
EMPTY_CONFIG = ("application/vnd.oci.empty.v1+json", b"{}")
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MAX_MANIFEST_BYTES = 4 << 20  # what distribution accepts for a manifest
MAX_BLOB_BYTES = 512 << 20  # a list of 2M long paths is about 400 MB
MAX_REFERRERS = 10_000  # entries of one referrers index we read
MAX_PULL_BYTES = 1 << 30  # bytes of list files one pull fetches ([registry] max_pull_bytes)
MAX_PULL_LISTS = 100  # lists one pull fetches ([registry] max_pull_lists)
TIMEOUT = 30.0  # seconds for connecting and for each read
REQUEST_DEADLINE = 600.0  # seconds for a whole request: connect, headers, body (MAX_BLOB_BYTES at about 1 MB/s)
ANNOTATION_NODE = "io.nydus-top.node"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_IMAGE = "io.nydus-top.image"
_KEPT_ANNOTATIONS = (ANNOTATION_CREATED, ANNOTATION_NODE, ANNOTATION_IMAGE)  # of a pulled list
MAX_ANNOTATION_CHARS = 256  # of each annotation kept from a pulled list's manifest

_REF = re.compile(r"(?P<registry>[^/]+)/(?P<repo>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                  r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
                  r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")


class RegistryError(Exception):
    """A registry operation failed; the message is one line."""


class ContentError(RegistryError):
    """What the registry sent for one manifest or blob is unusable (missing, larger than its
    descriptor or cap, not what its digest says, not JSON): unlike a registry that fails, the
    next artifact may be fine."""


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference that names its registry explicitly (nothing is guessed)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def version(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> Reference:
    """Parse ``host[:port]/path[:tag][@digest]``; a reference without a registry host is refused."""
    match = _REF.fullmatch(text)
    host = match.group("registry") if match else ""
    if match is None or not ("." in host or ":" in host or host == "localhost"):
        raise RegistryError(f"{text!r} is not an image reference with a registry host (host[:port]/repo:tag)")
    if not (match.group("tag") or match.group("digest")):
        raise RegistryError(f"{text!r} names neither a tag nor a digest")
    return Reference(host, match.group("repo"), match.group("tag") or "", match.group("digest") or "")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: Mapping[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(raw: Any) -> Descriptor | None:
    """A descriptor from untrusted JSON, or None when it is not one."""
    if not isinstance(raw, dict):
        return None
    media, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    annotations = raw.get("annotations")
    if (not isinstance(media, str) or not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
            or not isinstance(size, int) or size < 0):
        return None
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        annotations = None
    artifact = raw.get("artifactType")
    return Descriptor(media, digest, size, artifact if isinstance(artifact, str) else "", annotations)


class Client:
    """One registry, reached through the ORAS SDK's authenticated session."""

    def __init__(self, registry: str, *, plain_http: bool = False, timeout: float = TIMEOUT) -> None:
        self.registry = registry
        self.scheme = "http" if plain_http else "https"
        self._oras = oras_sdk.new_registry(registry, plain_http=plain_http)
        adapter = _TimeoutAdapter(timeout)
        oras_sdk.session(self._oras).mount("http://", adapter)
        oras_sdk.session(self._oras).mount("https://", adapter)
        self._authenticated: set[str] = set()
        self._lock = threading.Lock()
        self._deadlines: set[_Deadline] = set()  # of the requests under way (any thread)
        self._aborted = False

    def close(self) -> None:
        """Close the session's pooled connections."""
        oras_sdk.session(self._oras).close()

    def abort(self) -> None:
        """End the requests under way now and refuse later ones (from any thread): each raises
        RegistryError."""
        with self._lock:
            self._aborted = True
            running = list(self._deadlines)
        for deadline in running:
            deadline.expire("aborted: shutting down")

    # ------------------------------------------------------------ requests

    def _request(self, method: str, repo: str, path: str, *, data: bytes | None = None,
                 headers: dict[str, str] | None = None,
                 limit: int = MAX_MANIFEST_BYTES) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request; a successful answer's body is read up to *limit*
        bytes, an error's up to MAX_MANIFEST_BYTES; all within REQUEST_DEADLINE seconds."""
        if repo not in self._authenticated:  # credentials from the docker config, once per repository
            oras_sdk.load_credentials(self._oras, self.registry, repo)
            self._authenticated.add(repo)
        url = f"{self.scheme}://{self.registry}/v2/{repo}/{path}"
        deadline = _Deadline(REQUEST_DEADLINE)  # every socket this thread uses until it ends, auth included
        with self._lock:
            if self._aborted:
                raise RegistryError(f"{method} {url}: aborted: shutting down")
            self._deadlines.add(deadline)
        try:
            with deadline:
                response = oras_sdk.send(self._oras, url, method, data=data, headers=dict(headers or {}))
                # *limit* is for what we asked for; an error's text may be longer than a tiny blob
                body = _read_capped(response, limit if response.status_code < 300 else MAX_MANIFEST_BYTES, url)
            if deadline.why():  # the socket was shut down: what came is cut short
                raise RegistryError(f"{method} {url}: {deadline.why()}")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:  # urllib3's: from read1
            why = deadline.why()
            raise RegistryError(f"{method} {url}: {why}" if why
                                else self._unreachable(err) or f"{method} {url}: {_first_line(err)}") from None
        except ValueError as err:  # the SDK's way of saying authentication failed
            raise RegistryError(f"{method} {url}: {deadline.why() or self._unauthorized(err)}") from None
        finally:
            with self._lock:
                self._deadlines.discard(deadline)
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, body

    def _unauthorized(self, err: BaseException) -> str:
        """One line for a request the registry wants credentials for and we could not authenticate."""
        return (f"unauthorized: {self.registry} asks for credentials, and none it accepts are in the docker "
                f"config ($HOME/.docker/config.json) ({_first_line(err)})")

    def _unreachable(self, err: BaseException) -> str:
        """One line of why the registry could not be talked to and the flag that fixes it, for
        the causes an operator can fix ("" for any other)."""
        causes = list(_causes(err))
        if any(isinstance(c, socket.gaierror) or type(c).__name__ == "NameResolutionError" for c in causes):
            host = self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") else self.registry
            return f"cannot resolve the registry host {host} (is the image reference host[:port]/repo:tag right?)"
        if self.scheme == "https" and any("WRONG_VERSION_NUMBER" in str(c).upper().replace(" ", "_") for c in causes):
            return (f"{self.registry} answers HTTP, not HTTPS (--plain-http, or [registry] plain_http = "
                    f"[\"{self.registry}\"] in the configuration)")
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return f"{self.registry}: connection refused (is a registry listening there, and is it the image's host?)"
        if any(isinstance(c, (socket.timeout, urllib3.exceptions.TimeoutError)) for c in causes):
            return f"{self.registry}: no answer within {TIMEOUT:g} s"
        return ""

    def _expect(self, status: int, ok: tuple[int, ...], what: str, body: bytes) -> None:
        if status not in ok:
            raise RegistryError(f"{what}: registry answered {status} {_error_text(body)}".rstrip())

    # ------------------------------------------------------------ manifests and blobs

    def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor of the manifest (or index) *ref* names."""
        accept = ", ".join((MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST))
        status, headers, body = self._request("GET", ref.repository, f"manifests/{ref.version}",
                                              headers={"Accept": accept})
        self._expect(status, (200,), f"image {ref}", body)
        digest = digest_of(body)
        if ref.digest and digest != ref.digest:
            raise RegistryError(f"image {ref}: the registry sent a manifest with digest {digest}")
        media = headers.get("content-type", "").split(";")[0].strip() or MANIFEST
        return Descriptor(media, digest, len(body))

    def get_manifest(self, repo: str, version: str, accept: str,
                     limit: int = MAX_MANIFEST_BYTES) -> tuple[bytes, str] | None:
        """(body, media type) of a manifest, or None when there is none by that name; at most
        *limit* bytes (a descriptor's size) are read."""
        status, headers, body = self._request("GET", repo, f"manifests/{version}", headers={"Accept": accept},
                                              limit=min(limit, MAX_MANIFEST_BYTES))
        if status == 404:
            return None
        self._expect(status, (200,), f"manifest {repo}:{version}", body)
        if version.startswith("sha256:") and digest_of(body) != version:
            raise ContentError(f"manifest {repo}@{version}: content does not match its digest")
        return body, headers.get("content-type", "").split(";")[0].strip()

    def put_manifest(self, repo: str, version: str, body: bytes, media_type: str) -> str:
        status, _, answer = self._request("PUT", repo, f"manifests/{version}", data=body,
                                          headers={"Content-Type": media_type})
        self._expect(status, (200, 201), f"pushing manifest {repo}:{version}", answer)
        return digest_of(body)

    def put_blob(self, repo: str, data: bytes, media_type: str) -> Descriptor:
        digest = digest_of(data)
        status, _, _ = self._request("HEAD", repo, f"blobs/{digest}")
        if status != 200:
            status, headers, body = self._request("POST", repo, "blobs/uploads/")
            self._expect(status, (202,), f"starting upload to {repo}", body)
            location = headers.get("location", "")
            path = _upload_path(location, self.registry, repo)
            separator = "&" if "?" in path else "?"
            status, _, body = self._request("PUT", repo, f"{path}{separator}digest={digest}", data=data,
                                            headers={"Content-Type": "application/octet-stream"})
            self._expect(status, (201,), f"uploading a blob to {repo}", body)
        return Descriptor(media_type, digest, len(data))

    def get_blob(self, repo: str, descriptor: Descriptor, limit: int = MAX_BLOB_BYTES) -> bytes:
        if descriptor.size > limit:
            raise ContentError(f"blob {descriptor.digest} of {repo}: {descriptor.size} bytes is over {limit}")
        # Never more than the descriptor says: what comes beyond it cannot match the digest anyway.
        status, _, body = self._request("GET", repo, f"blobs/{descriptor.digest}", limit=descriptor.size)
        if status != 200:
            raise ContentError(f"blob {descriptor.digest} of {repo}: registry answered {status} "
                               f"{_error_text(body)}".rstrip())
        if digest_of(body) != descriptor.digest:
            raise ContentError(f"blob {descriptor.digest} of {repo}: content does not match its digest")
        return body

    # ------------------------------------------------------------ referrers

    def referrers(self, repo: str, subject: str) -> tuple[list[Descriptor], bool]:
        """(the artifacts referring to *subject*, whether the registry has the referrers API)."""
        status, headers, body = self._request("GET", repo, f"referrers/{subject}", headers={"Accept": INDEX})
        if status == 200 and headers.get("content-type", "").startswith(INDEX):
            return _index_entries(body, f"referrers of {subject}"), True
        found = self.get_manifest(repo, _referrers_tag(subject), INDEX)
        return (_index_entries(found[0], f"referrers tag of {subject}") if found else []), False

    def add_referrer(self, repo: str, subject: str, artifact: Descriptor, attempts: int = 5) -> None:
        """Make *artifact* listed as a referrer of *subject* (no-op with the referrers API).

        The tag schema is read-modify-write; two nodes pushing at once can overwrite each other's
        entry, so the index is read back and the update repeated until it lists ours.
        """
        for _ in range(attempts):
            entries, api = self.referrers(repo, subject)
            if api or any(e.digest == artifact.digest for e in entries):
                return
            index = {"schemaVersion": 2, "mediaType": INDEX,
                     "manifests": [e.as_json() for e in entries] + [artifact.as_json()]}
            self.put_manifest(repo, _referrers_tag(subject), _canonical(index), INDEX)
        raise RegistryError(f"could not add {artifact.digest} to the referrers of {subject} after {attempts} tries")


def _referrers_tag(subject: str) -> str:
    algorithm, _, hexdigest = subject.partition(":")
    return f"{algorithm}-{hexdigest}"[:128]


def _json_object(body: bytes, what: str, error: type[RegistryError] = RegistryError) -> dict[str, Any]:
    """A JSON object from a registry's answer; *error* (one line) for anything else, nesting
    too deep for the parser included."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raw = None
    if not isinstance(raw, dict):
        raise error(f"{what}: not a JSON object")
    return raw


def _index_entries(body: bytes, what: str) -> list[Descriptor]:
    raw = _json_object(body, what)
    manifests = raw.get("manifests")
    if not isinstance(manifests, list):
        raise RegistryError(f"{what}: not an image index")
    if len(manifests) > MAX_REFERRERS:
        raise RegistryError(f"{what}: more than {MAX_REFERRERS} entries")
    return [d for d in map(_descriptor, manifests) if d is not None]


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _upload_path(location: str, registry: str, repo: str) -> str:
    """The upload URL the registry gave, relative to ``/v2/<repo>/``; refused if it points elsewhere."""
    match = re.fullmatch(rf"(?:https?://{re.escape(registry)})?/v2/{re.escape(repo)}/(blobs/uploads/[^#]*)", location)
    if match is None:
        raise RegistryError(f"registry gave an upload location outside {registry}/{repo}: {location[:200]!r}")
    return match.group(1)


def _read_capped(response: Any, limit: int, url: str) -> bytes:
    """The body, at most *limit* bytes (the request's deadline ends one trickling in)."""
    chunks, total = [], 0
    # read1: whatever has come (iter_content waits for a whole chunk, byte by byte if need be)
    while chunk := response.raw.read1(min(65536, limit + 1 - total), decode_content=True):
        total += len(chunk)
        if total > limit:
            response.close()
            raise ContentError(f"GET {url}: answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_current = threading.local()  # .deadline: the _Deadline of the request this thread is making


class _Deadline:
    """A whole request's time limit: connect, headers and body, the SDK's auth round trips
    included. The sockets used meanwhile by this thread are shut down when it passes (a read
    timeout alone lets a registry trickle headers or a body in forever, a byte per timeout)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._reason = ""
        self._ended = False
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        _current.deadline = None
        self._timer.cancel()
        with self._lock:
            self._ended = True
            self._sockets.clear()

    def attach(self, sock: socket.socket | None) -> None:
        """A socket this request reads or writes: shut down at once if the deadline has passed."""
        if sock is None:
            return
        with self._lock:
            if self._ended:
                return
            self._sockets.append(sock)
            late = bool(self._reason)
        if late:
            _shut(sock)

    def expire(self, reason: str = "") -> None:
        with self._lock:
            if self._ended or self._reason:
                return
            self._reason = reason or f"no complete answer within {self.seconds:g} s (REQUEST_DEADLINE)"
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def why(self) -> str:
        """Why the request was cut ("" while it was not)."""
        with self._lock:
            return self._reason


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it; the pool discards it
    except OSError:
        pass  # closed already


def _attach_current(sock: socket.socket | None) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    """A connection whose socket obeys the current request's deadline."""

    def connect(self) -> None:
        super().connect()
        _attach_current(self.sock)

    def getresponse(self) -> Any:  # a pooled connection is reused without connect()
        _attach_current(self.sock)
        return super().getresponse()


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    """As _HTTPConnection, with TLS."""

    def connect(self) -> None:
        super().connect()
        _attach_current(self.sock)

    def getresponse(self) -> Any:
        _attach_current(self.sock)
        return super().getresponse()


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _error_text(body: bytes) -> str:
    try:
        errors = _json_object(body, "").get("errors", [])
        return "; ".join(str(e.get("message", e.get("code", ""))) for e in errors)[:300]
    except (RegistryError, AttributeError, TypeError):
        return ""


def _causes(err: BaseException) -> Iterator[BaseException]:
    """*err* and what it wraps: causes, contexts, urllib3's ``reason`` and exceptions among the args."""
    todo: list[BaseException] = [err]
    seen: set[int] = set()
    while todo and len(seen) < 32:  # a chain is a handful deep; a cycle or a flood ends here
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(w for w in wrapped if isinstance(w, BaseException))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Every request gets a timeout (requests has none by default), and its connections obey the
    request's deadline (through an HTTP proxy too)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> requests.Response:
        return super().send(request, stream=stream, timeout=self._timeout if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


# ---------------------------------------------------------------- lists as artifacts


@dataclass(frozen=True, slots=True)
class Pushed:
    image: Reference
    subject: str  # the image's manifest digest
    artifact: str  # the artifact manifest's digest
    files: tuple[str, ...]  # suffixes pushed ("", ".csv", ...)


def list_files(list_path: str | os.PathLike[str]) -> dict[str, bytes]:
    """The files of a saved list that exist, by suffix (the plain list is required), checked as
    :func:`nydus_top.lists.files.check_files` does; RegistryError (one line) otherwise."""
    base = os.fspath(list_path)
    if base.endswith(".csv"):
        base = base[: -len(".csv")]
    found: dict[str, bytes] = {}
    for suffix in LAYERS:
        try:  # never a symlink: one planted beside a list would send another file to the registry
            with open(os.open(base + suffix, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # a FIFO would hang the pusher
                    raise RegistryError(f"{base + suffix}: not a regular file, not pushed")
                found[suffix] = fh.read(MAX_BLOB_BYTES + 1)
        except FileNotFoundError:
            continue
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RegistryError(f"{base + suffix} is a symlink: not pushed") from None
            raise RegistryError(f"cannot read {base + suffix}: {err.strerror or err}") from None
        if len(found[suffix]) > MAX_BLOB_BYTES:
            raise RegistryError(f"{base + suffix}: larger than {MAX_BLOB_BYTES} bytes")
    if "" not in found:
        raise RegistryError(f"cannot read {base}: no such file")
    try:  # what others pull and count: a binary file, an empty list or a csv without header never goes up
        check_files(found, base)
    except ListFileError as err:
        raise RegistryError(f"{err}: not pushed") from None
    return found


def annotations_for(meta: ListMeta | None) -> dict[str, str]:
    """The artifact's annotations: when and where the list was recorded, and for which image."""
    created = (meta.created if meta else "") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    node = (meta.node if meta else "") or socket.gethostname()
    result = {ANNOTATION_CREATED: created, ANNOTATION_NODE: node}
    if meta is not None and meta.image:
        result[ANNOTATION_IMAGE] = meta.image
    return result


def push_list(client: Client, image: Reference, files: Mapping[str, bytes], annotations: Mapping[str, str]) -> Pushed:
    """Attach the list *files* (by suffix) to *image* as one artifact."""
    subject = client.resolve(image)
    repo = image.repository
    config = client.put_blob(repo, EMPTY_CONFIG[1], EMPTY_CONFIG[0])
    layers = []
    for suffix, data in files.items():
        layer = client.put_blob(repo, data, LAYERS[suffix])
        layers.append(Descriptor(layer.media_type, layer.digest, layer.size,
                                 annotations={"org.opencontainers.image.title": "list" + suffix}).as_json())
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT_TYPE,
                "config": config.as_json(), "layers": layers,
                "subject": Descriptor(subject.media_type, subject.digest, subject.size).as_json(),
                "annotations": dict(annotations)}
    body = _canonical(manifest)
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(f"artifact manifest of {len(body)} bytes is over {MAX_MANIFEST_BYTES}")
    digest = client.put_manifest(repo, digest_of(body), body, MANIFEST)
    client.add_referrer(repo, subject.digest, Descriptor(MANIFEST, digest, len(body), ARTIFACT_TYPE, annotations))
    return Pushed(image, subject.digest, digest, tuple(files))


@dataclass(frozen=True, slots=True)
class Attached:
    """One list attached to an image, fetched: its files by suffix."""

    artifact: str
    annotations: Mapping[str, str]
    files: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class Skipped:
    """One artifact passed over (the others are still fetched): why, in one line; or, with no
    artifact, the pull's limit reached (nothing more is fetched)."""

    artifact: str
    why: str


@dataclass(frozen=True, slots=True)
class _Listed:
    """A list attached to an image, its files not fetched yet."""

    artifact: str
    annotations: Mapping[str, str]
    layers: Mapping[str, Descriptor]  # by suffix


def iter_lists(client: Client, image: Reference, *, max_bytes: int = MAX_PULL_BYTES,
               max_lists: int = MAX_PULL_LISTS) -> Iterator[Attached | Skipped]:
    """Every list attached to *image*, oldest first (by its creation annotation), each list's files
    fetched only when it is its turn: memory holds one list's files, never every list's.

    An artifact that cannot be used comes as :class:`Skipped` and the rest follow. A list whose
    files equal one fetched already is skipped unfetched (each blob is fetched once). At most
    *max_lists* lists and *max_bytes* bytes of files are fetched; the last item is then a Skipped
    saying so. RegistryError when the registry itself fails."""
    subject = client.resolve(image)
    entries, _ = client.referrers(image.repository, subject.digest)
    listed: list[_Listed] = []
    for entry in entries:
        if entry.artifact_type and entry.artifact_type != ARTIFACT_TYPE:
            continue
        try:
            item = _fetch_listed(client, image.repository, entry)
        except ContentError as err:
            yield Skipped(entry.digest, str(err))
            continue
        if item is not None:
            listed.append(item)
    listed.sort(key=lambda a: (a.annotations.get(ANNOTATION_CREATED, ""), a.artifact))
    seen: dict[tuple[str, ...], str] = {}  # digests of a list's files -> the artifact fetched with them
    fetched = lists = 0
    for number, item in enumerate(listed):
        key = tuple(sorted(f"{suffix}={layer.digest}" for suffix, layer in item.layers.items()))
        if key in seen:
            yield Skipped(item.artifact, f"the same files as {seen[key]}")
            continue
        size = sum(layer.size for layer in item.layers.values())
        if lists >= max_lists or fetched + size > max_bytes:
            what = (f"{max_lists} lists (max_pull_lists)" if lists >= max_lists
                    else f"{max_bytes} bytes (max_pull_bytes)")
            yield Skipped("", f"pull limit of {what} reached: {len(listed) - number} more lists not fetched")
            return
        fetched += size
        try:
            files = {suffix: client.get_blob(image.repository, layer)
                     for suffix, layer in item.layers.items()}
        except ContentError as err:
            yield Skipped(item.artifact, str(err))
            continue
        try:  # what any node pushed: a csv without its header, a binary file, an empty list
            check_files(files, "list")
        except ListFileError as err:
            yield Skipped(item.artifact, str(err))
            continue
        seen[key] = item.artifact
        lists += 1
        yield Attached(item.artifact, item.annotations, files)


def _fetch_listed(client: Client, repo: str, entry: Descriptor) -> _Listed | None:
    """The list an artifact describes, None when it is none or was deleted since it was listed."""
    found = client.get_manifest(repo, entry.digest, MANIFEST, limit=entry.size)
    if found is None:
        return None
    return _listed(entry.digest, _json_object(found[0], f"manifest {repo}@{entry.digest}", ContentError))


def pull_lists(client: Client, image: Reference) -> list[Attached]:
    """Every list attached to *image*, oldest first, fetched (see :func:`iter_lists`); RegistryError
    for the first artifact skipped."""
    result = []
    for item in iter_lists(client, image):
        if isinstance(item, Skipped):
            raise RegistryError(f"artifact {item.artifact}: {item.why}")
        result.append(item)
    return result


def _listed(artifact: str, manifest: dict[str, Any]) -> _Listed | None:
    """The list an artifact manifest describes, or None when it is none (or has no plain list).
    Of its annotations only those we use are kept, each at most MAX_ANNOTATION_CHARS long."""
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        return None
    by_type = {media: suffix for suffix, media in LAYERS.items()}
    layers: dict[str, Descriptor] = {}
    raw_layers = manifest.get("layers")
    for raw in raw_layers if isinstance(raw_layers, list) else []:
        layer = _descriptor(raw)
        if layer is not None and layer.media_type in by_type:
            layers.setdefault(by_type[layer.media_type], layer)
    if "" not in layers:
        return None
    raw = manifest.get("annotations")
    annotations = {key: raw[key][:MAX_ANNOTATION_CHARS] for key in _KEPT_ANNOTATIONS
                   if isinstance(raw, dict) and isinstance(raw.get(key), str)}
    return _Listed(artifact, annotations, layers)


def run_name_of(attached: Attached) -> str:
    """A run-store name for a pulled list (``<created>-<node>_<digest prefix>``), safe as one component."""
    created = re.sub(r"[^0-9]", "", attached.annotations.get(ANNOTATION_CREATED, ""))[:14].ljust(14, "0")
    node = re.sub(r"[^A-Za-z0-9_-]", "_", attached.annotations.get(ANNOTATION_NODE, "node"))[:40] or "node"
    return f"{created[:8]}T{created[8:14]}.000000Z-{node}_{attached.artifact[7:19]}"


def write_pulled(outdir: Path, attached: Attached, *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write one pulled list into *outdir* under a run name (atomic, never overwriting).

    *root*: the directory we were told to write in when *outdir* lies under it (persist_dir):
    nothing between it and the files is followed if it is a symlink (see ``write_atomic``)."""
    base = outdir / run_name_of(attached)
    files = [(Path(os.fspath(base) + suffix), data) for suffix, data in attached.files.items()]
    write_atomic(files, overwrite=False, root=root)
    return [path for path, _ in files]
