"""The recorder's HTTP endpoint (``[metrics] address``): ``/metrics``, ``/healthz``, ``/readyz``.

Served on the recorder's own event loop, so ``/healthz`` answering proves the loop answers (a
loop stuck in a callback answers nothing, and the kubelet's liveness probe times out).
``/readyz`` is 200 only while the recorder is registered with the runtime over NRI and
synchronized, 503 otherwise. ``/metrics`` is Prometheus text (:mod:`nydus_top.recording.metrics`).
HTTP/1.0-style, one request per connection, GET and HEAD only. Peers are not trusted: a request
head is at most :data:`MAX_HEAD` bytes (a longer one is answered 400) and must arrive within
:data:`READ_TIMEOUT` seconds, and at most :data:`MAX_CLIENTS` connections are served at once
(more are closed at once, unanswered, with one log line). Whoever can reach the port can hold
those 16 connections and so fail the kubelet's probes: the port is for the node's network only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

from nydus_top.config import parse_address
from nydus_top.recording.metrics import Metrics

MAX_HEAD = 8192  # bytes of request line and headers
READ_TIMEOUT = 5.0  # seconds for a client to send its request head
MAX_CLIENTS = 16  # connections served at once


class Endpoint:
    """Serves metrics and health on one address until closed."""

    def __init__(self, metrics: Metrics, ready: Callable[[], bool], log: Callable[[str], None] = lambda line: None,
                 *, read_timeout: float = READ_TIMEOUT, max_clients: int = MAX_CLIENTS) -> None:
        self.metrics = metrics
        self.ready = ready
        self.log = log
        self.read_timeout, self.max_clients = read_timeout, max_clients
        self._server: asyncio.Server | None = None
        self._clients = 0
        self._full = False  # said that max_clients was reached; said again only after it was not
        self._serving: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # connections being served

    async def start(self, address: str) -> tuple[str, int]:
        """Listen on *address*; the (host, port) bound first. Raises ValueError or OSError."""
        host, port = parse_address(address)
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD, reuse_address=True)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        """Stop listening and end the connections being served (they are cut off, unanswered)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._serving.values():
            writer.transport.abort()
        await asyncio.gather(*self._serving, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= self.max_clients:
            if not self._full:
                self._full = True
                self.log(f"metrics endpoint: {self.max_clients} connections at once (MAX_CLIENTS); "
                         "more are closed unanswered until one ends")
            writer.transport.abort()
            return
        self._full = False
        self._clients += 1
        task = asyncio.current_task()
        assert task is not None
        self._serving[task] = writer
        try:
            try:
                head = await asyncio.wait_for(_read_head(reader), self.read_timeout)
            except asyncio.LimitOverrunError:
                head = None  # longer than MAX_HEAD: answered 400
            status, body, kind = self._answer(head) if head is not None else (400, b"bad request\n", "text/plain")
            method = head.split(" ", 1)[0] if head else ""
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            if method != "HEAD":
                writer.write(body)
            await asyncio.wait_for(writer.drain(), self.read_timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            writer.transport.abort()
        finally:
            self._clients -= 1
            self._serving.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), self.read_timeout)

    def _answer(self, head: str) -> tuple[int, bytes, str]:
        parts = head.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, b"bad request\n", "text/plain"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, b"GET or HEAD only\n", "text/plain"
        if target == "/healthz":
            return 200, b"ok\n", "text/plain"
        if target == "/readyz":
            if self.ready():
                return 200, b"ok\n", "text/plain"
            return 503, b"not ready: not registered and synchronized with the runtime over NRI\n", "text/plain"
        if target == "/metrics":
            return 200, self.metrics.exposition(), CONTENT_TYPE_LATEST
        return 404, b"not found: /metrics, /healthz or /readyz\n", "text/plain"


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def _read_head(reader: asyncio.StreamReader) -> str | None:
    """The request line, once the whole head (to its blank line) is read; None if not text."""
    data = await reader.readuntil(b"\r\n\r\n")
    if len(data) > MAX_HEAD:  # the stream's limit counts up to the separator, not with it
        return None
    try:
        return data.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
