"""A misbehaving registry on 127.0.0.1: answers only what a test put in it, by request path.

A real registry (CNCF distribution) validates what it stores; this one serves anything: JSON that
is not a manifest, huge annotations, errors after some answers. It logs every request path, so a
test can see what we asked for and in which order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT = "application/vnd.nydus-top.prefetch-list.v1"
PLAIN = "application/vnd.nydus-top.prefetch-list.v1+text"
CSV = "application/vnd.nydus-top.prefetch-list.v1+csv"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class HostileRegistry:
    host: str = ""
    answers: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)  # path -> status, type, body
    asked: list[str] = field(default_factory=list)
    gzipped: set[str] = field(default_factory=set)  # paths whose body goes out with Content-Encoding: gzip

    def put(self, path: str, body: bytes, media: str = "application/octet-stream", status: int = 200) -> None:
        self.answers[path] = (status, media, body)

    def image(self, repo: str, tag: str) -> str:
        """An image manifest under *tag*; its digest."""
        body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "layers": []}).encode()
        self.put(f"/v2/{repo}/manifests/{tag}", body, MANIFEST)
        self.put(f"/v2/{repo}/manifests/{digest(body)}", body, MANIFEST)
        return digest(body)

    def artifact(self, repo: str, subject: str, blob: bytes, *, created: str, annotations: dict[str, Any] | None = None,
                 body: bytes | None = None, csv: bytes | None = None) -> dict[str, Any]:
        """A list attached to *subject* (its blobs served too, unless a test removes them); its
        descriptor for the referrers answer. *body*: serve this as the manifest instead; *csv*: the
        list's csv as a second layer."""
        layers = [{"mediaType": PLAIN, "digest": digest(blob), "size": len(blob)}]
        self.put(f"/v2/{repo}/blobs/{digest(blob)}", blob)
        if csv is not None:
            layers.append({"mediaType": CSV, "digest": digest(csv), "size": len(csv)})
            self.put(f"/v2/{repo}/blobs/{digest(csv)}", csv)
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT,
                    "layers": layers,
                    "annotations": {"org.opencontainers.image.created": created, "io.nydus-top.node": "n",
                                    **(annotations or {})}}
        data = body if body is not None else json.dumps(manifest).encode()
        self.put(f"/v2/{repo}/manifests/{digest(data)}", data, MANIFEST)
        return {"mediaType": MANIFEST, "digest": digest(data), "size": len(data), "artifactType": ARTIFACT}

    def referrers(self, repo: str, subject: str, descriptors: list[dict[str, Any]]) -> None:
        body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}).encode()
        self.put(f"/v2/{repo}/referrers/{subject}", body, INDEX)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler], *, stop: threading.Event | None = None) -> Iterator[str]:
    """Serve *handler* on 127.0.0.1 from a thread; its host:port. At the end *stop* (for handlers
    that answer until it is set) is set first and their threads are not waited for; the threads of
    other handlers are."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = stop is not None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        if stop is not None:
            stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def hostile_registry() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            registry.asked.append(self.path)
            status, media, body = registry.answers.get(self.path, (404, "application/json", b'{"errors":[]}'))
            self.send_response(status)
            if media:  # "": an answer without a Content-Type
                self.send_header("Content-Type", media)
            if self.path in registry.gzipped:
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    with _serve(Handler) as host:
        registry.host = host
        yield registry


@contextmanager
def trickling_registry(pause: float) -> Iterator[str]:
    """A registry that answers every GET with 200 and then one body byte every *pause* seconds,
    forever (each read finishes well within any read timeout); its host:port."""
    stop = threading.Event()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", MANIFEST)
            self.end_headers()
            try:
                while not stop.wait(pause):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up

    with _serve(Handler, stop=stop) as host:
        yield host


@contextmanager
def short_registry() -> Iterator[str]:
    """A registry whose every answer promises 100 bytes and sends 10, then closes; its host:port."""

    class Handler(_Quiet):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", MANIFEST)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"{" * 10)

    with _serve(Handler) as host:
        yield host


@contextmanager
def slow_header_registry(pause: float) -> Iterator[str]:
    """A registry that answers every request with a status line and then one header byte every
    *pause* seconds, forever (each read finishes well within any read timeout); its host:port."""
    stop = threading.Event()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                while not stop.wait(pause):
                    self.wfile.write(b"X")
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up

        do_HEAD = do_POST = do_PUT = do_GET

    with _serve(Handler, stop=stop) as host:
        yield host
