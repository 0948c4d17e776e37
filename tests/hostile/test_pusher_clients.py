"""Registry hosts come from the images containers run: any number of them. The recorder's pusher
keeps only the most recent CLIENTS_KEPT registry clients (sessions with pooled connections)."""

from __future__ import annotations

from pathlib import Path

from nydus_top.recording.pusher import CLIENTS_KEPT, ListPusher
from tests.registry.test_list_pusher import Log, _saved


def test_registry_clients_kept_are_limited(tmp_path: Path) -> None:
    log = Log()
    pusher = ListPusher(log, attempts=1)
    try:
        for port in range(1, CLIENTS_KEPT + 3):  # nothing listens on 127.0.0.1 below 20 here
            image = f"127.0.0.1:{port}/team/app:1"
            pusher.submit(_saved(tmp_path, f"l{port}", image, ["/a"]), image)
        assert pusher.wait_idle(60)
        assert len(log.matching("cannot push")) == CLIENTS_KEPT + 2
        assert list(pusher._clients) == [f"127.0.0.1:{port}" for port in range(3, CLIENTS_KEPT + 3)]
    finally:
        pusher.close()
