"""Saved lists pushed to their image's registry in the background (``[registry] push = true``).

The recorder hands every saved list to :meth:`ListPusher.submit`, which only queues it: one
worker thread pushes (:func:`nydus_top.registry.artifacts.push_list`), so a slow or absent registry never
holds up a container start, the NRI loop or a save. A failed push is retried with exponential
backoff, at most :data:`ATTEMPTS` times and within :data:`DEADLINE` seconds. Failures are logged
once per image: the first final failure says why; later ones of the same image are only counted
until a push of that image succeeds (or the pusher closes), which reports the count if there
was more than the one said. At most
:data:`QUEUE_LIMIT` lists wait; a list beyond that is not pushed and says so. Closing retries
nothing, abandons waiting lists with one line and never waits for a hanging registry longer than
it is told.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nydus_top.lists import meta as listmeta
from nydus_top.text import printable

ATTEMPTS = 5  # tries of one list
FIRST_DELAY = 2.0  # seconds before the first retry; doubled each time
MAX_DELAY = 60.0  # longest wait between two tries
DEADLINE = 300.0  # seconds from the first try after which a list is given up
QUEUE_LIMIT = 256  # lists waiting to be pushed
REQUEST_TIMEOUT = 30.0  # seconds for connecting and for each read of a request
TRACKED_IMAGES = 1024  # images whose failures are counted at once
CLIENTS_KEPT = 16  # registry clients (sessions, pooled connections) kept for reuse, the least recent closed


@dataclass(frozen=True, slots=True)
class Job:
    list_path: Path
    image: str


@dataclass(slots=True)
class _Failures:
    count: int
    last: str


class PermanentError(Exception):
    """A push that no retry can fix (no registry in the image name, list gone)."""


class ListPusher:
    """One background worker pushing saved lists; ``submit`` never blocks."""

    def __init__(self, log: Callable[[str], None], *, plain_http: Iterable[str] = (), attempts: int = ATTEMPTS,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY, deadline: float = DEADLINE,
                 queue_limit: int = QUEUE_LIMIT, timeout: float = REQUEST_TIMEOUT, start: bool = True) -> None:
        self.log = log
        self.plain_http = frozenset(plain_http)
        self.attempts, self.first_delay, self.max_delay, self.deadline = attempts, first_delay, max_delay, deadline
        self.timeout = timeout
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_limit)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._unfinished = 0
        self._failures: dict[str, _Failures] = {}  # image -> failed pushes since its last success
        self._clients: dict[str, Any] = {}  # registry host -> registry.Client
        self.pushed = 0
        self._thread = threading.Thread(target=self._run, name="nydus-top list pusher", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the worker (done by the constructor unless ``start=False``)."""
        self._thread.start()

    # ------------------------------------------------------------ caller side (any thread)

    def submit(self, list_path: str | os.PathLike[str], image: str) -> bool:
        """Queue a saved list for pushing; False (and one line) if it cannot be queued."""
        job = Job(Path(list_path), image)
        if self._stop.is_set():
            self.log(f"not pushing {printable(str(job.list_path))}: the pusher is closed")
            return False
        with self._idle:
            self._unfinished += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._finished()
            self.log(f"not pushing {printable(str(job.list_path))}: {self._queue.maxsize} lists already wait")
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted list is pushed or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, drain: float = 0.0, timeout: float = 5.0) -> None:
        """Stop: no more retries (a list waiting for one gives up at once, with its line) and no new
        lists; the lists queued get their try within *drain* seconds, those still waiting then are
        abandoned (one line); at most *timeout* more seconds for a push under way."""
        self._stop.set()
        if drain > 0 and self._thread.is_alive():
            self.wait_idle(drain)
        abandoned = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                abandoned += 1
                self._finished()
        try:
            self._queue.put(None, timeout=timeout)  # wakes the worker; room was just made
        except queue.Full:
            pass  # filled again meanwhile: the worker sees the stop after its next try
        if self._thread.is_alive():
            self._thread.join(timeout)
        if abandoned:
            self.log(f"{abandoned} saved lists not pushed: shutting down")
        if self._thread.is_alive():
            self.log(f"a push still runs {timeout:.1f} s after closing: left behind at shutdown")
        for image, failures in sorted(self._failures.items()):
            if failures.count > 1:  # the first one was said when it happened
                self.log(f"pushing lists of {printable(image)}: {failures.count} failed in all, last: {failures.last}")
        self._failures.clear()

    # ------------------------------------------------------------ worker

    def _finished(self) -> None:
        with self._idle:
            self._unfinished -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        # The registry SDK loads here, before any list comes: a list saved at shutdown gets its
        # try within the short drain, not an import (seconds on a busy node).
        from nydus_top.registry import artifacts  # noqa: F401, PLC0415 - loaded only when pushing

        while True:
            job = self._queue.get()
            if job is None:
                return
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
                if attempt == self.attempts or elapsed + delay > self.deadline or self._stop.is_set():
                    self._failed(job, f"{err} ({attempt} tries in {elapsed:.1f} s)")
                    return
                if self._stop.wait(delay):  # closing: give up now
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
        client = self._clients.pop(image.registry, None)  # put back last: most recent
        if client is None:
            client = registry.Client(image.registry, plain_http=image.registry in self.plain_http, timeout=self.timeout)
            if len(self._clients) >= CLIENTS_KEPT:  # registry hosts come from images: any number of them
                self._clients.pop(next(iter(self._clients))).close()
        self._clients[image.registry] = client
        pushed = registry.push_list(client, image, files, registry.annotations_for(meta))
        return pushed.artifact

    def _succeeded(self, job: Job, artifact: str) -> None:
        self.pushed += 1
        earlier = self._failures.pop(job.image, None)
        after = f" (after {earlier.count} failed pushes of this image)" if earlier else ""
        self.log(f"pushed {printable(str(job.list_path))} to {printable(job.image)} as {artifact}{after}")

    def _failed(self, job: Job, why: str) -> None:
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
