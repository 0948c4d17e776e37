"""The recorder's background pushes (``[registry] push = true``): lists reach the registry, a registry
that is down costs one log line and never blocks the caller, limits have lines."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_top.lists.files import save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.recording.pusher import ListPusher
from nydus_top.registry import artifacts as registry
from testkit.failing_registry import FailingRegistry

from .conftest import LocalRegistry


class Log:
    """Log lines collected from the pusher's thread."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def matching(self, text: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if text in line]


def _saved(tmp_path: Path, name: str, image: str, paths: list[str]) -> Path:
    target = tmp_path / name
    save_list([ListedFile(p, 100, 10 * i) for i, p in enumerate(paths)], target,
              meta=ListMeta(image=image, node="node-p", created="2026-12-01T12:00:00Z"))
    return target


@pytest.fixture
def black_hole_server() -> Iterator[socket.socket]:
    """A listening socket that never answers what connects to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server


@pytest.fixture
def black_hole(black_hole_server: socket.socket) -> str:
    """A registry address (host:port) that accepts connections and never answers."""
    return f"127.0.0.1:{black_hole_server.getsockname()[1]}"


def test_a_saved_list_is_pushed_and_attached(tmp_path: Path, local_registry: LocalRegistry,
                                             pushed_image: tuple[str, str]) -> None:
    ref, digest = pushed_image
    listing = _saved(tmp_path, "app", ref, ["/bin/app", "/etc/app.conf"])
    log = Log()
    pusher = ListPusher(log, plain_http=[local_registry.host])
    try:
        assert pusher.submit(listing, ref)
        assert pusher.wait_idle(30)
    finally:
        pusher.close()
    (line,) = log.matching("pushed ")
    assert f"pushed {listing} to {ref} as sha256:" in line
    (attached,) = registry.pull_lists(registry.Client(local_registry.host, plain_http=True),
                                      registry.parse_reference(ref))
    assert attached.files[""] == listing.read_bytes()
    assert attached.annotations[registry.ANNOTATION_NODE] == "node-p"


def test_a_registry_that_is_down_is_one_line_and_never_blocks(tmp_path: Path, black_hole: str) -> None:
    image = f"{black_hole}/team/app:1"
    lists = [_saved(tmp_path, f"l{n}", image, ["/bin/app"]) for n in range(3)]
    log = Log()
    pusher = ListPusher(log, plain_http=[black_hole], attempts=3, first_delay=0.01, timeout=0.2)
    try:
        assert all(pusher.submit(path, image) for path in lists)
        # Every request to the black hole takes its full timeout (9 of them: at least 1.8 s in all);
        # submitting waited for none of them, so they are still to come (a lower bound: no load breaks it).
        assert not pusher.wait_idle(0) and log.matching("cannot push") == []
        assert pusher.wait_idle(60)
    finally:
        pusher.close()
    (failure,) = log.matching("cannot push")
    assert f"cannot push {lists[0]} to {image}: " in failure and "3 tries" in failure
    assert "\n" not in failure
    (count,) = log.matching("failed in all")
    assert f"pushing lists of {image}: 3 failed in all" in count
    assert pusher.pushed == 0


def test_an_image_without_a_registry_is_not_retried(tmp_path: Path) -> None:
    listing = _saved(tmp_path, "local", "nydus-top.local/demo:1", ["/a"])
    log = Log()
    pusher = ListPusher(log, attempts=5, first_delay=60)  # a retry would outlast the wait below
    try:
        pusher.submit(listing, "demo:1")
        assert pusher.wait_idle(30)
    finally:
        pusher.close()
    (failure,) = log.matching("cannot push")
    assert "is not an image reference with a registry host" in failure


def test_the_queue_limit_refuses_with_a_line_and_close_abandons_with_one(tmp_path: Path) -> None:
    listing = _saved(tmp_path, "q", "127.0.0.1:1/team/app:1", ["/a"])
    log = Log()
    pusher = ListPusher(log, queue_limit=2, start=False)  # nothing is taken off the queue
    assert pusher.submit(listing, "127.0.0.1:1/team/app:1")
    assert pusher.submit(listing, "127.0.0.1:1/team/app:1")
    assert not pusher.submit(listing, "127.0.0.1:1/team/app:1")
    assert log.matching("not pushing") == [f"not pushing {listing}: 2 lists already wait"]
    pusher.close()
    assert log.matching("not pushed") == ["2 saved lists not pushed: shutting down"]
    assert pusher.wait_idle(0)
    assert not pusher.submit(listing, "127.0.0.1:1/team/app:1")


def test_close_ends_a_push_to_a_hanging_registry(tmp_path: Path, black_hole_server: socket.socket,
                                                       black_hole: str) -> None:
    image = f"{black_hole}/team/app:1"
    log = Log()
    pusher = ListPusher(log, plain_http=[black_hole], timeout=60)
    pusher.submit(_saved(tmp_path, "hang", image, ["/a"]), image)
    black_hole_server.settimeout(30)
    connection, _ = black_hole_server.accept()  # the push is under way, and will hang for 60 s
    with connection:
        pusher.close(drain=0.2, timeout=120)  # the push under way is ended, not waited for
    assert log.matching("still runs") == []
    (failure,) = log.matching("cannot push")
    assert "aborted: shutting down" in failure


def test_a_hanging_registry_never_delays_pushes_to_another(tmp_path: Path, local_registry: LocalRegistry,
                                                           pushed_image: tuple[str, str],
                                                           black_hole_server: socket.socket, black_hole: str) -> None:
    ref, _ = pushed_image
    hanging = f"{black_hole}/team/app:1"
    log = Log()
    pushed = threading.Event()
    pusher = ListPusher(lambda line: (log(line), line.startswith("pushed ") and pushed.set()),
                        plain_http=[local_registry.host, black_hole], timeout=600)
    try:
        pusher.submit(_saved(tmp_path, "hang", hanging, ["/a"]), hanging)
        black_hole_server.settimeout(60)
        connection, _ = black_hole_server.accept()  # that push is under way, and hangs for 600 s
        with connection:
            pusher.submit(_saved(tmp_path, "app", ref, ["/bin/app"]), ref)
            assert pushed.wait(120), log.lines  # a margin for a loaded machine, far below the hang
    finally:
        pusher.close()
    assert log.matching("pushed ")[0].startswith(f"pushed {tmp_path}/app to {ref} as sha256:")


@pytest.fixture
def failing_registry() -> Iterator[FailingRegistry]:
    server = FailingRegistry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_closing_retries_nothing_and_says_the_failure_once(tmp_path: Path, failing_registry: FailingRegistry) -> None:
    # issue 18 item 18: record's shutdown drain waited out the backoff (2 s) for a retry, so SIGTERM
    # took 3.16 s, and the failure was said when the list gave up and again in close's count.
    host = f"127.0.0.1:{failing_registry.server_address[1]}"
    image = f"{host}/team/app:1"
    log = Log()
    pusher = ListPusher(log, plain_http=[host])  # the recorder's own tries and backoff
    assert pusher.submit(_saved(tmp_path, "l", image, ["/a"]), image)
    assert failing_registry.first.wait(60)  # the first try is under way (or over)
    # Drains as long as it takes the list to end (no time limit to break under load): its one try.
    pusher.close(drain=120, timeout=120)
    assert pusher.wait_idle(0)
    assert failing_registry.requests == 1
    (line,) = log.lines
    assert line.startswith(f"cannot push {tmp_path / 'l'} to {image}: ") and "500" in line
