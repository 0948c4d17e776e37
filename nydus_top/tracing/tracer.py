"""Host-side tracer API: start, stream and stop fanotify traces of containers by pid.

The calling process may be multithreaded (TUI, asyncio): the mount-namespace work happens in a
fork of a warm single-threaded helper (:mod:`nydus_top.tracing.helper`). Typical use::

    pool = TracerPool()                 # starts the warm helper
    trace = pool.start(pid)             # ~ms: fork, setns, fanotify mark
    trace.wait_ready(timeout=0.5)       # or: await trace.wait_ready_async(0.5)
    for batch in trace:                 # lists of Access / Overflow, until the trace ends
        ...
    trace.stop()                        # drains what the kernel queued, then ends the stream

or ``pool.start(pid, on_batch=callback)``: the callback runs on the trace's reader thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from nydus_top.model.records import KINDS, QUEUE, Access, Overflow, TraceRecord
from nydus_top.tracing import file_session as trace_session

Batch = list[TraceRecord]

END_REASONS = {trace_session.STOPPED: "stopped", trace_session.EXITED: "target-exited"}


def isolated_python(python: str = sys.executable) -> list[str]:
    """argv start of every Python child we run as root: isolated mode (``-I``) puts neither the
    caller's working directory nor PYTHONPATH on its import path and ignores every PYTHON*
    variable and the user's site directory. Installed packages (an editable install too: its
    finder comes from a ``.pth`` file in site-packages) still import."""
    return [python, "-I"]


class TracerError(Exception):
    """A trace could not be armed or failed while running."""


def parse_line(line: bytes | str) -> TraceRecord:
    """One JSON line of the tracer protocol -> record. Raises ValueError on anything else.

    Paths and command names keep undecodable bytes as lone surrogates (``os.fsencode`` gives
    the original bytes back); they may contain any character, including newlines.
    """
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("tracer line is not an object")
    try:
        if obj.get("kind") == "overflow":
            lost = obj.get("lost")
            return Overflow(int(obj["elapsed"]), None if lost is None else int(lost), str(obj.get("reason", QUEUE)))
        kind = obj["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return Access(seq=int(obj["seq"]), path=str(obj["path"]), size=int(obj["size"]),
                      elapsed_us=int(obj["elapsed"]), kind=kind, pid=int(obj["pid"]),
                      comm=str(obj["comm"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"bad tracer line: {e}") from None


class Trace:
    """One running trace. Create with :meth:`TracerPool.start`."""

    def __init__(self, pid: int, out_r: int, status_r: int, stop_w: int,
                 on_batch: Callable[[Batch], None] | None,
                 parse: Callable[[bytes], Any] = parse_line, on_end: Callable[[], None] | None = None) -> None:
        self.pid = pid
        self._parse = parse
        self._on_end = on_end  # called on the reader thread once the stream and status have ended
        self.end_reason: str | None = None  # "stopped", "target-exited" or "error" once done
        self.error: str | None = None
        self._status_r = status_r
        self._stop_w: int | None = stop_w
        self._status_lock = threading.Lock()
        self._ready = False
        self.tracer_pid: int | None = None  # host pid of the tracer process, once ready
        self.mark_ns: int | None = None  # wall-clock (CLOCK_REALTIME) ns of the mark, once ready: elapsed_us's zero
        self._tracer_pidfd: int | None = None
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read_stream, args=(out_r,),
                                        name=f"trace-{pid}", daemon=True)
        self._reader.start()

    # -- readiness and end status -------------------------------------------------------------
    def _read_status(self, timeout: float | None, until_ready: bool) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._status_lock:
            while self._status_r >= 0 and not (until_ready and self._ready):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not select.select([self._status_r], [], [], left)[0]:
                    raise TimeoutError(f"tracer for pid {self.pid} not ready after {timeout}s")
                data = os.read(self._status_r, 4096)
                if not data:
                    os.close(self._status_r)
                    self._status_r = -1
                    if self.end_reason is None and self.error is None:
                        self.error = "tracer ended without a status"
                    break
                if data[:1] == trace_session.READY:
                    self._ready = True
                    self.tracer_pid, self.mark_ns = struct.unpack("<Iq", data[1:13])
                    data = data[13:]
                    if until_ready and not data:  # alive: it still owes us an end byte
                        try:
                            self._tracer_pidfd = os.pidfd_open(self.tracer_pid)
                        except ProcessLookupError:
                            pass
                if data[:1] == trace_session.ERROR:
                    self.error = self.error or data[1:].decode("utf-8", "replace")
                elif data[:1] in END_REASONS:
                    self.end_reason = END_REASONS[data[:1]]

    def wait_ready(self, timeout: float) -> None:
        """Block until the mark is in place. Raises TracerError if arming failed, TimeoutError."""
        self._read_status(timeout, until_ready=True)
        if not self._ready:
            raise TracerError(self.error or f"tracer for pid {self.pid} failed")

    async def wait_ready_async(self, timeout: float) -> None:
        """:meth:`wait_ready` for asyncio code (runs in the default executor)."""
        await asyncio.get_running_loop().run_in_executor(None, self.wait_ready, timeout)

    @property
    def ready(self) -> bool:
        return self._ready

    # -- streaming -----------------------------------------------------------------------------
    def _deliver(self, batch: Batch | None) -> None:
        if self._on_batch is None:
            self._queue.put(batch)
        elif batch:
            self._on_batch(batch)

    def _read_stream(self, out_r: int) -> None:
        pending = b""
        try:
            while chunk := os.read(out_r, 1 << 16):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                batch: Batch = []
                for line in lines:
                    try:
                        batch.append(self._parse(line))
                    except ValueError:
                        continue  # cannot happen with our tracer; never let a line stop the stream
                self._deliver(batch)
        finally:
            os.close(out_r)
            self._read_status(None, until_ready=False)
            if self._on_end is not None:
                self._on_end()
            if self.error is not None:
                self.end_reason = "error"
            self._done.set()
            if self._on_batch is None:
                self._queue.put(None)

    def batches(self, timeout: float | None = None) -> Iterator[Batch]:
        """Batches of records until the trace ends (not with ``on_batch``). TimeoutError if
        none arrives within ``timeout``."""
        if self._on_batch is not None:
            raise TracerError("this trace delivers batches to its on_batch callback")
        while True:
            try:
                batch = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no trace records within {timeout}s") from None
            if batch is None:
                self._queue.put(None)  # keep the end visible to later iterations
                return
            yield batch

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    # -- ending --------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Ask the tracer to drain what the kernel queued and end; wait for the stream's end and
        (if :meth:`wait_ready` saw it ready) for the tracer process to be gone."""
        deadline = time.monotonic() + timeout
        if self._stop_w is not None:
            os.close(self._stop_w)
            self._stop_w = None
        if not self.wait(timeout):
            self._kill()
            raise TimeoutError(f"tracer for pid {self.pid} did not stop within {timeout}s; killed")
        if self._tracer_pidfd is not None:
            select.select([self._tracer_pidfd], [], [], max(0.0, deadline - time.monotonic()))
            os.close(self._tracer_pidfd)
            self._tracer_pidfd = None

    def _kill(self) -> None:
        """SIGKILL a tracer that does not end (its output consumer is stuck, say) and await it."""
        try:
            self._read_status(0, until_ready=True)  # its pid, if wait_ready was never called
        except TimeoutError:
            pass
        if self._tracer_pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self._tracer_pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        select.select([self._tracer_pidfd], [], [], 5.0)
        os.close(self._tracer_pidfd)
        self._tracer_pidfd = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the stream has ended (stop, target exit or error). True if it has."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


class TracerPool:
    """A warm helper process that starts traces on request; safe to share between threads."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def warm_up(self) -> None:
        """Start the helper now (about 0.1 s) instead of at the first :meth:`start`."""
        with self._lock:
            self._ensure_helper()

    def _ensure_helper(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self._shutdown()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [*isolated_python(self._python), "-m", "nydus_top.tracing.helper", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        ours.settimeout(30)
        if ours.recv(1) != b"W":
            ours.close()
            raise TracerError("tracer helper failed to start")
        ours.settimeout(None)
        self._sock = ours
        return ours

    def start(self, pid: int, *, container_id: str | None = None,
              on_batch: Callable[[Batch], None] | None = None,
              bounded_queue: bool = False, small_set: bool = False) -> Trace:
        """Start tracing the mount namespace of host ``pid``; returns at once (see wait_ready).

        ``on_batch`` receives each batch on the trace's reader thread; without it iterate the
        trace. With ``container_id`` (recommended whenever the pid was learnt earlier) the trace
        fails unless ``pid`` is in a cgroup whose path holds that id, as containerd's are: the
        pid may have been reused, by a host process say. Test knobs: ``bounded_queue``, the kernel's default queue,
        read only at stop; ``small_set``, a limit of 8192 distinct files.
        """
        msg = {"pid": int(pid), "cid": container_id, "bounded": bool(bounded_queue), "small": bool(small_set)}
        return Trace(pid, *self.submit(msg), on_batch)

    def submit(self, request: Mapping[str, object], extra_fds: Sequence[int] = ()) -> tuple[int, int, int]:
        """Hand one request to a spare; returns (stream read end, status read end, stop write end).
        ``extra_fds`` go with it after the three pipes (the caller keeps and closes them)."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
        msg = json.dumps(request).encode()
        try:
            with self._lock:
                for attempt in (0, 1):
                    sock = self._ensure_helper()
                    try:
                        socket.send_fds(sock, [msg], [out_w, status_w, stop_r, *extra_fds])
                        break
                    except OSError:
                        if attempt:
                            raise TracerError("tracer helper is not answering") from None
                        self._shutdown()
        except BaseException:
            for fd in (out_r, status_r, stop_w):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, status_w, stop_r):
                os.close(fd)
        return out_r, status_r, stop_w

    def _shutdown(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Stop the helper. Running traces are not affected: each ends with its own stop()."""
        with self._lock:
            self._shutdown()

    def __enter__(self) -> TracerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
