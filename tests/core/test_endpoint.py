"""The recorder's HTTP endpoint against hostile clients: every limit at its number, one line."""

from __future__ import annotations

import asyncio

from nydus_top.recording.endpoint import MAX_HEAD, Endpoint
from nydus_top.recording.metrics import Metrics


async def _ask(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await reader.read()
    except ConnectionResetError:
        return b""  # closed unanswered
    finally:
        writer.close()


def _head(path: str, size: int = 0) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode()
    padding = size - len(head) - len(b"X-Pad: \r\n\r\n")
    return head + (b"X-Pad: " + b"a" * padding + b"\r\n" if size else b"") + b"\r\n"


def test_a_request_head_up_to_the_limit_is_answered_and_a_longer_one_refused() -> None:
    async def main() -> tuple[bytes, bytes, bytes]:
        endpoint = Endpoint(Metrics(), lambda: False)
        _, port = await endpoint.start("127.0.0.1:0")
        try:
            at = await _ask(port, _head("/healthz", MAX_HEAD))
            over = await _ask(port, _head("/healthz", MAX_HEAD + 1))
            ready = await _ask(port, _head("/readyz"))
        finally:
            await endpoint.close()
        return at, over, ready

    at, over, ready = asyncio.run(main())
    assert at.startswith(b"HTTP/1.1 200 OK\r\n") and at.endswith(b"\r\n\r\nok\n")
    assert over.startswith(b"HTTP/1.1 400 ")
    assert ready.startswith(b"HTTP/1.1 503 ")


def test_connections_past_the_limit_are_closed_with_one_line_and_a_silent_client_is_dropped() -> None:
    lines: list[str] = []

    async def main() -> tuple[list[bytes], bytes]:
        endpoint = Endpoint(Metrics(), lambda: True, lines.append, read_timeout=0.5, max_clients=2)
        _, port = await endpoint.start("127.0.0.1:0")
        try:
            silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0)  # let the server take both
            refused = [await _ask(port, _head("/healthz")) for _ in range(3)]
            # the silent ones are dropped after read_timeout: the endpoint answers again
            for reader, _ in silent:
                try:
                    assert await reader.read() == b""
                except ConnectionResetError:
                    pass  # cut off: the same for the client
            after = await _ask(port, _head("/healthz"))
        finally:
            await endpoint.close()
        return refused, after

    refused, after = asyncio.run(main())
    assert refused == [b"", b"", b""]
    assert len(lines) == 1 and "2 connections at once (MAX_CLIENTS)" in lines[0]
    assert after.startswith(b"HTTP/1.1 200 OK")
