"""Saved lists pushed to their image's registry in the background (``[registry] push = true``).

The recorder hands every saved list to :meth:`ListPusher.submit`, which only queues it, in the
queue of the image's registry: each registry with lists waiting has its own worker thread (at
most :data:`WORKERS` at once; a registry beyond that waits for a worker to finish), so a slow or
absent registry never holds up a container start, the NRI loop, a save or the pushes to another
registry. A failed push is retried with exponential backoff, at most :data:`ATTEMPTS` times and
within :data:`DEADLINE` seconds. Failures are logged once per image: the first final failure says
why; later ones of the same image are only counted until a push of that image succeeds (or the
pusher closes), which reports the count if there was more than the one said. At most
:data:`QUEUE_LIMIT` lists wait in all; a list beyond that is not pushed and says so. Closing
retries nothing, gives the lists queued their try within its drain, abandons those still waiting
with one line, ends the requests under way and never waits for a hanging registry longer than it
is told.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nydus_top.lists import meta as listmeta
from nydus_top.text import printable

if TYPE_CHECKING:  # metrics are optional: the recorder never needs prometheus_client itself
    from nydus_top.recording.metrics import Metrics

ATTEMPTS = 5  # tries of one list
FIRST_DELAY = 2.0  # seconds before the first retry; doubled each time
MAX_DELAY = 60.0  # longest wait between two tries
DEADLINE = 300.0  # seconds from the first try after which a list is given up
QUEUE_LIMIT = 256  # lists waiting to be pushed, all registries together
REQUEST_TIMEOUT = 30.0  # seconds for connecting and for each read of a request
TRACKED_IMAGES = 1024  # images whose failures are counted at once
WORKERS = 8  # registries pushed to at once (a worker thread and a client each)


@dataclass(frozen=True, slots=True)
class Job:
    list_path: Path
    image: str

    @property
    def registry(self) -> str:
        """The registry host the image names ("" for none: that push fails with one line)."""
        first, slash, _ = self.image.partition("/")
        return first if slash else ""


@dataclass(slots=True)
class _Failures:
    count: int
    last: str


class PermanentError(Exception):
    """A push that no retry can fix (no registry in the image name, list gone)."""


def _load_sdk() -> None:
    from nydus_top.registry import artifacts  # noqa: F401, PLC0415 - loaded only when pushing


class ListPusher:
    """Background workers pushing saved lists, one per registry; ``submit`` never blocks."""

    def __init__(self, log: Callable[[str], None], *, plain_http: Iterable[str] = (), attempts: int = ATTEMPTS,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY, deadline: float = DEADLINE,
                 queue_limit: int = QUEUE_LIMIT, timeout: float = REQUEST_TIMEOUT, workers: int = WORKERS,
                 start: bool = True, metrics: Metrics | None = None) -> None:
        self.log = log
        self.metrics = metrics  # None: metrics are off
        self.plain_http = frozenset(plain_http)
        self.attempts, self.first_delay, self.max_delay, self.deadline = attempts, first_delay, max_delay, deadline
        self.timeout = timeout
        self.queue_limit, self.max_workers = queue_limit, workers
        self._lock = threading.Lock()  # guards everything below it
        self._queues: dict[str, deque[Job]] = {}  # registry host -> lists waiting for it, oldest first
        self._waiting = 0  # lists in all queues
        self._workers: dict[str, threading.Thread] = {}  # registry host -> its worker
        self._clients: dict[str, Any] = {}  # registry host -> the registry.Client its worker uses now
        self._failures: dict[str, _Failures] = {}  # image -> failed pushes since its last success
        self._started = False
        self._closing = threading.Event()  # set first by close(): no more retries
        self._stop = threading.Event()  # set once close() has drained: no more lists taken
        self._idle = threading.Condition()
        self._unfinished = 0
        self.pushed = 0
        if start:
            self.start()

    def start(self) -> None:
        """Start taking lists off the queues (done by the constructor unless ``start=False``)."""
        with self._lock:
            self._started = True
            self._spawn()
        # The registry SDK loads now, off the caller's thread, not when the first list comes: a list
        # saved at shutdown gets its try within the short drain, not an import (seconds on a busy node).
        threading.Thread(target=_load_sdk, name="nydus-top push: load SDK", daemon=True).start()

    # ------------------------------------------------------------ caller side (any thread)

    def submit(self, list_path: str | os.PathLike[str], image: str) -> bool:
        """Queue a saved list for pushing; False (and one line) if it cannot be queued."""
        job = Job(Path(list_path), image)
        if self._stop.is_set():
            self.log(f"not pushing {printable(str(job.list_path))}: the pusher is closed")
            return False
        with self._lock:
            full = self._waiting >= self.queue_limit
            if not full:
                self._waiting += 1
                new = job.registry not in self._queues and job.registry not in self._workers
                self._queues.setdefault(job.registry, deque()).append(job)
                with self._idle:
                    self._unfinished += 1
                self._spawn()
                waits = new and self._started and job.registry not in self._workers
        if not full:
            self._count("pushes_queued", job)
        if full:
            self.log(f"not pushing {printable(str(job.list_path))}: {self.queue_limit} lists already wait")
            return False
        if waits:
            self.log(f"pushes to {printable(job.registry)} wait: {self.max_workers} registries are pushed to "
                     "at once (WORKERS)")
        return True

    @property
    def waiting(self) -> int:
        """Lists waiting in the queues (being pushed not included)."""
        return self._waiting

    def _count(self, name: str, job: Job) -> None:
        if self.metrics is not None:
            counter = getattr(self.metrics, name)
            counter.labels(self.metrics.registry_label(job.registry or "none")).inc()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted list is pushed or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, drain: float = 0.0, timeout: float = 5.0) -> None:
        """Stop: no more retries (a list waiting for one gives up at once, with its line) and no new
        lists; the lists queued get their try within *drain* seconds, those still waiting then are
        abandoned (one line), the requests under way ended, at most *timeout* more seconds for the
        workers to finish."""
        self._closing.set()
        if drain > 0 and self._started:
            self.wait_idle(drain)
        self._stop.set()
        with self._lock:
            abandoned = self._waiting
            self._queues.clear()
            self._waiting = 0
            workers = list(self._workers.values())
            clients = list(self._clients.values())
        for _ in range(abandoned):
            self._finished()
        for client in clients:
            client.abort()
        end = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, end - time.monotonic()))
        if abandoned:
            self.log(f"{abandoned} saved lists not pushed: shutting down")
        if any(worker.is_alive() for worker in workers):
            self.log(f"a push still runs {timeout:.1f} s after closing: left behind at shutdown")
        with self._lock:
            failures = sorted(self._failures.items())
            self._failures.clear()
        for image, failed in failures:
            if failed.count > 1:  # the first one was said when it happened
                self.log(f"pushing lists of {printable(image)}: {failed.count} failed in all, last: {failed.last}")

    # ------------------------------------------------------------ workers

    def _spawn(self) -> None:
        """Start a worker for each registry with lists waiting and none yet, up to max_workers
        (called with the lock held)."""
        if not self._started or self._stop.is_set():
            return
        for host in self._queues:
            if len(self._workers) >= self.max_workers:
                return
            if host not in self._workers:
                worker = threading.Thread(target=self._run, args=(host,), name=f"nydus-top push {host}"[:40],
                                          daemon=True)
                self._workers[host] = worker
                worker.start()

    def _finished(self) -> None:
        with self._idle:
            self._unfinished -= 1
            self._idle.notify_all()

    def _next(self, host: str) -> Job | None:
        """The next list for *host*; None (and this worker's place given up) when there is none."""
        with self._lock:
            waiting = self._queues.get(host)
            if waiting and not self._stop.is_set():
                self._waiting -= 1
                job = waiting.popleft()
                if not waiting:
                    del self._queues[host]
                return job
            del self._workers[host]
            client = self._clients.pop(host, None)
            self._spawn()  # a registry that waited for a worker gets this one's place
        if client is not None:
            client.close()
        return None

    def _run(self, host: str) -> None:
        while (job := self._next(host)) is not None:
            try:
                self._push_with_retries(job)
            except Exception as err:  # noqa: BLE001 - the worker must survive anything
                self._failed(job, f"{type(err).__name__}: {err}")
            finally:
                self._finished()

    def _push_with_retries(self, job: Job) -> None:
        from nydus_top.registry.artifacts import RegistryError  # noqa: PLC0415 - the SDK loads only when pushing

        start = time.monotonic()
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                artifact = self._push(job)
            except PermanentError as err:
                self._failed(job, str(err))
                return
            except RegistryError as err:
                elapsed = time.monotonic() - start
                if attempt == self.attempts or elapsed + delay > self.deadline or self._closing.is_set():
                    self._failed(job, f"{err} ({attempt} tries in {elapsed:.1f} s)")
                    return
                if self._closing.wait(delay):  # closing: give up now
                    self._failed(job, f"{err} (shutting down)")
                    return
                delay = min(delay * 2, self.max_delay)
            else:
                self._succeeded(job, artifact)
                return

    def _push(self, job: Job) -> str:
        from nydus_top.registry import artifacts as registry  # noqa: PLC0415 - the registry SDK loads only when pushing

        try:
            image = registry.parse_reference(job.image)
            files = registry.list_files(job.list_path)
            meta = listmeta.read(job.list_path)
        except (registry.RegistryError, listmeta.MetaError) as err:
            raise PermanentError(str(err)) from None
        with self._lock:  # this worker's own client: the image's host is the worker's
            client = self._clients.get(image.registry)
            if client is None:
                client = registry.Client(image.registry, plain_http=image.registry in self.plain_http,
                                         timeout=self.timeout)
                self._clients[image.registry] = client
        if self._stop.is_set():  # close() may have aborted the clients before this one existed
            raise registry.RegistryError("shutting down")
        pushed = registry.push_list(client, image, files, registry.annotations_for(meta))
        return pushed.artifact

    def _succeeded(self, job: Job, artifact: str) -> None:
        with self._lock:
            self.pushed += 1
            earlier = self._failures.pop(job.image, None)
        self._count("pushes_succeeded", job)
        after = f" (after {earlier.count} failed pushes of this image)" if earlier else ""
        self.log(f"pushed {printable(str(job.list_path))} to {printable(job.image)} as {artifact}{after}")

    def _failed(self, job: Job, why: str) -> None:
        self._count("pushes_failed", job)
        with self._lock:
            failures = self._failures.get(job.image)
            if failures is not None:
                failures.count += 1
                failures.last = printable(why)
                return  # said once already; counted
            if len(self._failures) >= TRACKED_IMAGES:
                self._failures.pop(next(iter(self._failures)))
            self._failures[job.image] = _Failures(1, printable(why))
        self.log(f"cannot push {printable(str(job.list_path))} to {printable(job.image)}: {printable(why)}; "
                 "further failures of this image are counted, not logged")
