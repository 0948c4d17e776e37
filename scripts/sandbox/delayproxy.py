"""A TCP proxy that holds every server-to-client chunk for a fixed one-way delay (this kernel has no netem).

``python -I delayproxy.py LISTEN_HOST:PORT UPSTREAM_HOST:PORT DELAY_SECONDS``: run by the slow link
inside its network namespace, in front of the registry. Each chunk read from the server is sent
on to the client ``DELAY_SECONDS`` after it arrived, in order, without holding back the chunks
behind it (so the delay does not cut the rate). It models a per-chunk delay, not per-packet TCP:
no slow start, no loss. Client-to-server data and connection set-up are not delayed. Standard
library only; prints ``listening`` once it accepts connections.
"""

from __future__ import annotations

import asyncio
import collections
import sys

CHUNK = 64 * 1024
MAX_QUEUED = 256  # chunks held per connection (16 MiB) before reading from the server pauses


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        _close(writer)


async def _delayed_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    more = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def read() -> None:
        try:
            while True:
                await room.wait()
                data = await reader.read(CHUNK)
                held.append((loop.time() + delay, data))
                more.set()
                if not data:
                    return
                if len(held) >= MAX_QUEUED:
                    room.clear()
        except (ConnectionError, OSError):
            held.append((loop.time(), b""))
            more.set()

    reading = asyncio.ensure_future(read())
    try:
        while True:
            while not held:
                more.clear()
                await more.wait()
            due, data = held.popleft()
            room.set()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (ConnectionError, OSError, RuntimeError):
        pass


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def serve(listen: str, upstream: str, delay: float) -> None:
    up_host, up_port = _split(upstream)

    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(up_host, up_port)
        except OSError:
            _close(client_writer)
            return
        await asyncio.gather(_pump(client_reader, server_writer),
                             _delayed_pump(server_reader, client_writer, delay))

    host, port = _split(listen)
    server = await asyncio.start_server(connection, host, port, reuse_address=True)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: delayproxy.py LISTEN_HOST:PORT UPSTREAM_HOST:PORT DELAY_SECONDS", file=sys.stderr)
        return 2
    asyncio.run(serve(argv[0], argv[1], float(argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
