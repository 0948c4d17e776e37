"""Registry hosts come from the images containers run: any number of them. The recorder's pusher
has one worker (and one client) per registry with lists waiting, at most WORKERS at once; a
registry beyond that waits for one, with one line, and none is left open once its lists are done."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from nydus_top.recording.pusher import ListPusher
from tests.registry.test_list_pusher import Log, _saved


def _workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nydus-top push ")]


def test_registries_pushed_to_at_once_are_limited(tmp_path: Path) -> None:
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]  # accept, never answer
    hosts = [f"127.0.0.1:{server.getsockname()[1]}" for server in servers]
    log = Log()
    pusher = ListPusher(log, plain_http=hosts, attempts=1, timeout=600, workers=2)
    try:
        for n, host in enumerate(hosts):
            pusher.submit(_saved(tmp_path, f"l{n}", f"{host}/team/app:1", ["/a"]), f"{host}/team/app:1")
        for server in servers[:2]:
            server.settimeout(60)
            held, _ = server.accept()  # both workers hang on their registry
            held.close()  # ... until it hangs up: that push fails, its worker goes to the third
        servers[2].settimeout(60)
        third, _ = servers[2].accept()
        third.close()
        assert pusher.wait_idle(60)
    finally:
        pusher.close()
        for server in servers:
            server.close()
    assert log.matching("wait:") == [f"pushes to {hosts[2]} wait: 2 registries are pushed to at once (WORKERS)"]
    assert len(log.matching("cannot push")) == 3
    assert not pusher._workers and not pusher._clients and _workers() == []
